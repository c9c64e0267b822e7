//! Reading Kubernetes manifests from files: multi-document YAML into JSON values, each tagged
//! with where it came from so errors can name the file and document.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One YAML document from a file.
#[derive(Clone, Debug)]
pub struct Document {
    /// The file it was read from (`-` for standard input).
    pub source: PathBuf,
    /// Zero-based index of the document within the file.
    pub index: usize,
    /// The document as JSON.
    pub value: serde_json::Value,
}

impl Document {
    /// `file` or `file#N` (1-based) when the file has several documents, for messages.
    pub fn location(&self) -> String {
        format!("{} (document {})", self.source.display(), self.index + 1)
    }
}

/// Why a manifest file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{path}: invalid YAML: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser error (it carries line and column).
        #[source]
        source: serde_yaml::Error,
    },
}

/// Parses every non-empty document of a YAML text.
pub fn parse_documents(source: &Path, text: &str) -> Result<Vec<Document>, ReadError> {
    let mut documents = Vec::new();
    for (index, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(de).map_err(|err| ReadError::Yaml {
            path: source.to_path_buf(),
            source: err,
        })?;
        if !value.is_null() {
            documents.push(Document {
                source: source.to_path_buf(),
                index,
                value,
            });
        }
    }
    Ok(documents)
}

/// Reads and parses files; `-` reads standard input.
pub fn read_files(paths: &[PathBuf]) -> Result<Vec<Document>, ReadError> {
    let mut documents = Vec::new();
    for path in paths {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(path)
        }
        .map_err(|source| ReadError::Io {
            path: path.clone(),
            source,
        })?;
        documents.extend(parse_documents(path, &text)?);
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_skips_empty_ones() {
        let docs = parse_documents(Path::new("x.yaml"), "a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value["a"], 1);
        assert_eq!(docs[1].value["b"], 2);
        assert_eq!(docs[1].index, 2);
    }

    #[test]
    fn invalid_yaml_names_the_file() {
        let err = parse_documents(Path::new("bad.yaml"), "a: [1,\n").unwrap_err();
        assert!(
            err.to_string().starts_with("bad.yaml: invalid YAML"),
            "{err}"
        );
    }
}
