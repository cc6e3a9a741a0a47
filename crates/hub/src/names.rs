//! Which repo ids, revisions and file paths are accepted. Everything that is
//! put into a URL or joined onto a local path passes through here first.

use crate::HubError;

const MAX_REPO_SEGMENT: usize = 96;
const MAX_PATH: usize = 512;
const MAX_REVISION: usize = 255;

/// `owner/name` or a legacy single `name`: each segment 1–96 characters of
/// `[A-Za-z0-9._-]`, starting and ending with a letter, digit or `_`, without
/// `..` (the Hub's own rule, which also keeps `.`/`..` segments out).
pub fn validate_repo_id(repo: &str) -> Result<(), HubError> {
    let refuse = |why: &str| Err(HubError::InvalidName(format!("repo id {repo:?}: {why}")));
    let segments: Vec<&str> = repo.split('/').collect();
    if segments.len() > 2 {
        return refuse("must be \"owner/name\" or \"name\"");
    }
    for segment in segments {
        if segment.is_empty() {
            return refuse("empty segment");
        }
        if segment.len() > MAX_REPO_SEGMENT {
            return refuse("segment longer than 96 characters");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return refuse("only letters, digits, '.', '_' and '-' are allowed");
        }
        if segment.contains("..") {
            return refuse("\"..\" is not allowed");
        }
        let edge = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let bytes = segment.as_bytes();
        if !edge(bytes[0]) || !edge(bytes[bytes.len() - 1]) {
            return refuse("a segment must start and end with a letter, digit or '_'");
        }
    }
    Ok(())
}

/// A file path inside a repository: relative, `/`-separated, at most 512
/// bytes, no empty, `.` or `..` segment, no backslash, NUL or other control
/// character.
pub fn validate_repo_path(file: &str) -> Result<(), HubError> {
    let refuse = |why: &str| Err(HubError::InvalidName(format!("file path {file:?}: {why}")));
    if file.is_empty() {
        return refuse("empty");
    }
    if file.len() > MAX_PATH {
        return refuse("longer than 512 bytes");
    }
    if file.chars().any(|c| c == '\\' || c.is_control()) {
        return refuse("backslash or control character");
    }
    if file.starts_with('/') {
        return refuse("must be relative");
    }
    for segment in file.split('/') {
        match segment {
            "" => return refuse("empty segment"),
            "." | ".." => return refuse("\".\" and \"..\" segments are not allowed"),
            _ => {}
        }
    }
    Ok(())
}

/// A branch, tag, commit or `refs/pr/N`: 1–255 bytes, no control character,
/// backslash or `..`, no empty segment. It travels as a single URL segment.
pub fn validate_revision(revision: &str) -> Result<(), HubError> {
    let refuse = |why: &str| {
        Err(HubError::InvalidName(format!(
            "revision {revision:?}: {why}"
        )))
    };
    if revision.is_empty() || revision.len() > MAX_REVISION {
        return refuse("must be 1 to 255 bytes");
    }
    if revision.chars().any(|c| c == '\\' || c.is_control()) {
        return refuse("backslash or control character");
    }
    if revision.contains("..") {
        return refuse("\"..\" is not allowed");
    }
    if revision.split('/').any(str::is_empty) {
        return refuse("empty segment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: fn(&str) -> Result<(), HubError>, cases: &[(&str, bool)]) {
        for (input, ok) in cases {
            assert_eq!(f(input).is_ok(), *ok, "{input:?}");
        }
    }

    #[test]
    fn repo_ids() {
        let long = "a".repeat(97);
        check(
            validate_repo_id,
            &[
                ("Qwen/Qwen2.5-7B-Instruct", true),
                ("ggml-org/gemma-3-1b-it-GGUF", true),
                ("gpt2", true),
                ("bert-base-uncased", true),
                ("_x/y_", true),
                ("a/b/c", false),
                ("", false),
                ("/name", false),
                ("owner/", false),
                ("..", false),
                ("owner/..", false),
                ("owner/a..b", false),
                (".hidden/x", false),
                ("owner/name-", false),
                ("owner/na me", false),
                ("owner/na%2Fme", false),
                ("owner\\name", false),
                ("owner/name\0", false),
                (&long, false),
                (&"a".repeat(96), true),
            ],
        );
    }

    #[test]
    fn repo_paths() {
        let long = "a".repeat(513);
        check(
            validate_repo_path,
            &[
                ("config.json", true),
                ("Q4_K_M/model-00001-of-00002.gguf", true),
                ("dir with space/file #1?.bin", true),
                (".gitattributes", true),
                ("", false),
                ("/etc/passwd", false),
                ("../x", false),
                ("a/../b", false),
                ("a/./b", false),
                ("a//b", false),
                ("a/", false),
                ("a\\b", false),
                ("a\0b", false),
                ("a\nb", false),
                (&long, false),
            ],
        );
    }

    #[test]
    fn revisions() {
        check(
            validate_revision,
            &[
                ("main", true),
                ("v1.0", true),
                ("refs/pr/1", true),
                ("a09a35458c702b33eeacc393d103063234e8bc28", true),
                ("", false),
                ("..", false),
                ("refs//pr", false),
                ("/main", false),
                ("ma\0in", false),
            ],
        );
    }
}
