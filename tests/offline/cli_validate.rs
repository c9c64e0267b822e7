//! `infmon validate` accepts every example and rejects every file in tests/invalid with the
//! message its `# Expect:` line names.

use std::path::{Path, PathBuf};
use std::process::Command;

fn infmon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_infmon"))
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML files in {}", dir.display());
    files
}

#[test]
fn every_example_is_valid() {
    for file in yaml_files("examples") {
        let out = infmon()
            .arg("validate")
            .arg("-f")
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{} should be valid:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn every_invalid_file_is_rejected_with_its_message() {
    for file in yaml_files("tests/invalid") {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# Expect: "))
            .unwrap_or_else(|| panic!("{} lacks an '# Expect:' line", file.display()));
        let out = infmon()
            .arg("validate")
            .arg("-f")
            .arg(&file)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{} should be invalid:\n{stdout}",
            file.display()
        );
        assert!(
            stdout.contains(expected),
            "{}: expected a message containing {expected:?}, got:\n{stdout}",
            file.display()
        );
        // The message names the field: each error line starts with a field path.
        let first_error = stdout.lines().nth(1).unwrap_or_default().trim();
        assert!(
            first_error.starts_with("spec"),
            "{}: {first_error}",
            file.display()
        );
    }
}

#[test]
fn several_documents_in_one_file_are_each_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two.yaml");
    let valid =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/vllm.yaml"))
            .unwrap();
    let invalid = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid/port-zero.yaml"),
    )
    .unwrap();
    std::fs::write(&file, format!("{valid}\n---\n{invalid}")).unwrap();
    let out = infmon()
        .arg("validate")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("(document 1): vllm: valid"), "{stdout}");
    assert!(
        stdout.contains("(document 2): port-zero: invalid"),
        "{stdout}"
    );
}

#[test]
fn unreadable_input_exits_2() {
    let out = infmon()
        .args(["validate", "-f", "/nonexistent/file.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/file.yaml"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, "spec: [unclosed\n").unwrap();
    let out = infmon()
        .arg("validate")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid YAML"));
}
