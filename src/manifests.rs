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
    /// The file is past an input limit (size, nesting, aliases).
    #[error("{path}: {reason}")]
    Limit {
        /// The file.
        path: PathBuf,
        /// Which limit, and by how much.
        reason: String,
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

/// The largest file (or standard input) read, in bytes.
pub const MAX_INPUT_BYTES: usize = 4 << 20;
/// The deepest YAML nesting accepted (a resource needs fewer than ten levels).
pub const MAX_DEPTH: usize = 64;
/// The most YAML aliases (`*name`) accepted in one file.
pub const MAX_ALIASES: usize = 64;

/// Checks a YAML text against [`MAX_DEPTH`] and [`MAX_ALIASES`] before it is parsed: deep
/// nesting costs the parser time with the square of the depth, and aliases multiply the
/// memory a small file takes. A lexical scan, so it errs towards counting too much (brackets
/// or `*` in block scalars count too).
fn check_shape(text: &str) -> Result<(), String> {
    let mut aliases = 0;
    let mut flow = 0usize;
    let mut blocks: Vec<usize> = Vec::new();
    let mut quote: Option<char> = None;
    for line in text.lines() {
        let mut chars = line.char_indices().peekable();
        let mut previous = ' ';
        if quote.is_none() && flow == 0 {
            let content = line.trim_start();
            if !content.is_empty() && !content.starts_with('#') && content != "---" {
                let indent = line.len() - content.len();
                while blocks.last().is_some_and(|&top| top >= indent) {
                    blocks.pop();
                }
                blocks.push(indent);
                // `- - - x` nests sequences on one line.
                let dashes = content.split("- ").take_while(|p| p.is_empty()).count();
                if blocks.len() + dashes > MAX_DEPTH {
                    return Err(format!("YAML nesting deeper than {MAX_DEPTH} levels"));
                }
            }
        }
        while let Some((_, c)) = chars.next() {
            match quote {
                Some('"') => match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => quote = None,
                    _ => {}
                },
                Some(_) => {
                    if c == '\'' {
                        if chars.peek().is_some_and(|&(_, n)| n == '\'') {
                            chars.next();
                        } else {
                            quote = None;
                        }
                    }
                }
                None => {
                    let token_start = previous.is_whitespace() || "[{,:".contains(previous);
                    match c {
                        '#' if previous.is_whitespace() => break,
                        '"' | '\'' if token_start => quote = Some(c),
                        '[' | '{' => {
                            flow += 1;
                            if flow + blocks.len() > MAX_DEPTH {
                                return Err(format!("YAML nesting deeper than {MAX_DEPTH} levels"));
                            }
                        }
                        ']' | '}' => flow = flow.saturating_sub(1),
                        '*' if token_start
                            && chars.peek().is_some_and(|&(_, n)| {
                                n.is_alphanumeric() || n == '_' || n == '-'
                            }) =>
                        {
                            aliases += 1;
                            if aliases > MAX_ALIASES {
                                return Err(format!(
                                    "more than {MAX_ALIASES} YAML aliases (*name); write the values out"
                                ));
                            }
                        }
                        _ => {}
                    }
                }
            }
            previous = c;
        }
    }
    Ok(())
}

/// Parses every non-empty document of a YAML text. Like kubectl, a mapping with a key twice is
/// an error rather than "last wins"; input past the limits above is an error naming the limit.
pub fn parse_documents(source: &Path, text: &str) -> Result<Vec<Document>, ReadError> {
    let limit = |reason: String| ReadError::Limit {
        path: source.to_path_buf(),
        reason,
    };
    if text.len() > MAX_INPUT_BYTES {
        return Err(limit(format!(
            "{} bytes; at most {MAX_INPUT_BYTES} bytes are read",
            text.len()
        )));
    }
    check_shape(text).map_err(limit)?;
    let mut documents = Vec::new();
    for (index, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        // Through serde_yaml's own value, which rejects duplicate keys.
        let yaml = serde_yaml::Value::deserialize(de).map_err(|err| ReadError::Yaml {
            path: source.to_path_buf(),
            source: err,
        })?;
        let value = serde_json::to_value(&yaml).map_err(|err| ReadError::Limit {
            path: source.to_path_buf(),
            reason: format!("document {} is not JSON-compatible: {err}", index + 1),
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
        // One byte more than the limit, so an oversized input is reported, not cut.
        let limit = MAX_INPUT_BYTES as u64 + 1;
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::Read::take(std::io::stdin(), limit))
        } else {
            std::fs::File::open(path)
                .and_then(|file| std::io::read_to_string(std::io::Read::take(file, limit)))
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
    fn duplicate_keys_are_rejected_like_kubectl() {
        let err = parse_documents(Path::new("d.yaml"), "a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
    }

    #[test]
    fn deep_nesting_and_many_aliases_stop_before_parsing() {
        let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse_documents(Path::new("deep.yaml"), &deep).unwrap_err();
        assert!(err.to_string().contains("nesting deeper than 64"), "{err}");
        let dashes = format!("{}x\n", "- ".repeat(100_000));
        assert!(parse_documents(Path::new("deep.yaml"), &dashes).is_err());
        let mut laughs = String::from("a0: &a0 [x, x]\n");
        for i in 1..40 {
            laughs.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}]\n", p = i - 1));
        }
        let err = parse_documents(Path::new("laughs.yaml"), &laughs).unwrap_err();
        assert!(err.to_string().contains("aliases"), "{err}");
        // Quoted and in-word stars and brackets are not aliases or nesting.
        let fine = "a: \"*x [[[\"\nb: '*y {{'\nc: .*z\n";
        assert_eq!(
            parse_documents(Path::new("ok.yaml"), fine).unwrap().len(),
            1
        );
    }

    #[test]
    fn oversized_input_is_rejected_with_the_limit() {
        let big = format!("a: \"{}\"\n", "x".repeat(MAX_INPUT_BYTES));
        let err = parse_documents(Path::new("big.yaml"), &big).unwrap_err();
        assert!(err.to_string().contains("at most 4194304 bytes"), "{err}");
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
