//! Paramfiles (`file://`, `fileb://`) and blob parameters, following the
//! AWS CLI v2 with its default `cli_binary_format=base64`.

use base64::Engine as _;

use super::{ArgError, ParamProblem};
use crate::awscli::python::py_repr_str;

/// Python `os.path.expanduser` (for `~` and `~/...`) then
/// `os.path.expandvars` (`$NAME`, `${NAME}`; unknown names left as-is).
fn expand_path(path: &str) -> String {
    let mut p = path.to_string();
    if (p == "~" || p.starts_with("~/"))
        && let Ok(home) = std::env::var("HOME")
    {
        let home = home.trim_end_matches('/');
        p = format!("{home}{}", &p[1..]);
        if p.is_empty() {
            p = "/".to_string();
        }
    }
    let chars: Vec<char> = p.chars().collect();
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '$' {
            let (name, end) = if chars.get(i + 1) == Some(&'{') {
                match chars[i + 2..].iter().position(|c| *c == '}') {
                    Some(off) => (
                        chars[i + 2..i + 2 + off].iter().collect::<String>(),
                        i + 3 + off,
                    ),
                    None => (String::new(), i + 1),
                }
            } else {
                let mut j = i + 1;
                while j < chars.len() && is_word(chars[j]) {
                    j += 1;
                }
                (chars[i + 1..j].iter().collect::<String>(), j)
            };
            if end > i + 1 {
                if let Ok(val) = std::env::var(&name) {
                    out.push_str(&val);
                } else {
                    out.extend(&chars[i..end]);
                }
                i = end;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Python's `str(OSError)`: `[Errno 2] No such file or directory: 'path'`.
fn py_os_error(err: &std::io::Error, path: &str) -> String {
    match err.raw_os_error() {
        Some(code) => {
            let text = err.to_string();
            let suffix = format!(" (os error {code})");
            let text = text.strip_suffix(&suffix).unwrap_or(&text);
            format!("[Errno {code}] {text}: {}", py_repr_str(path))
        }
        None => err.to_string(),
    }
}

/// Read a `file://` / `fileb://` paramfile: `(expanded path, bytes)`.
fn load_paramfile(arg: &str, prefix: &str) -> Result<(String, Vec<u8>), ArgError> {
    let path = expand_path(&arg[prefix.len()..]);
    std::fs::read(&path)
        .map(|bytes| (path.clone(), bytes))
        .map_err(|e| {
            ArgError::Param(ParamProblem::Unreadable {
                arg: arg.to_string(),
                reason: py_os_error(&e, &path),
            })
        })
}

/// Python text-mode read: UTF-8 decode plus universal newlines.
fn load_text_paramfile(arg: &str) -> Result<String, ArgError> {
    let (path, bytes) = load_paramfile(arg, "file://")?;
    let text =
        String::from_utf8(bytes).map_err(|_| ArgError::Param(ParamProblem::NotText { path }))?;
    // Python's text mode with UTF-8 keeps a BOM (only utf-8-sig strips it).
    Ok(text.replace("\r\n", "\n").replace('\r', "\n"))
}

/// Python `base64.b64decode(s)` (non-strict): characters outside the base64
/// alphabet are skipped, decoding stops at the first complete padding, and
/// the data length must be valid.
fn py_b64decode(s: &str) -> Result<Vec<u8>, String> {
    let mut data = String::new();
    let mut quad_pos = 0usize;
    let mut pads = 0usize;
    let mut complete = false;
    for c in s.chars() {
        if c == '=' {
            if quad_pos >= 2 {
                pads += 1;
                if quad_pos + pads >= 4 {
                    complete = true;
                    break;
                }
            }
            continue;
        }
        if !(c.is_ascii_alphanumeric() || c == '+' || c == '/') {
            continue;
        }
        pads = 0;
        data.push(c);
        quad_pos = (quad_pos + 1) % 4;
    }
    if !complete && quad_pos == 1 {
        return Err(format!(
            "Invalid base64-encoded string: number of data characters ({}) cannot be 1 more than a multiple of 4",
            data.len()
        ));
    }
    if !complete && quad_pos != 0 {
        return Err("Incorrect padding".to_string());
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(data.as_bytes()).map_err(|e| e.to_string())
}

/// Read a blob parameter (`--plaintext`, `--ciphertext-blob`, ...) as the
/// AWS CLI v2 does with the default `cli_binary_format=base64`:
/// `fileb://PATH` gives the file's bytes unchanged, `file://PATH` gives the
/// file's text base64-decoded, anything else is base64-decoded.
pub(crate) fn read_blob_arg(arg: &str) -> Result<Vec<u8>, ArgError> {
    if arg.starts_with("fileb://") {
        return Ok(load_paramfile(arg, "fileb://")?.1);
    }
    let text = if arg.starts_with("file://") {
        load_text_paramfile(arg)?
    } else {
        arg.to_string()
    };
    py_b64decode(&text).map_err(|reason| ArgError::InvalidBase64 {
        value: text.clone(),
        reason,
    })
}

/// Read a string parameter: `file://PATH` gives the file as text (UTF-8,
/// universal newlines, as Python's text mode), `fileb://PATH` gives the raw
/// bytes, which must be UTF-8, anything else is the literal value.
pub(crate) fn read_text_arg(arg: &str) -> Result<String, ArgError> {
    if arg.starts_with("fileb://") {
        let (path, bytes) = load_paramfile(arg, "fileb://")?;
        return String::from_utf8(bytes)
            .map_err(|_| ArgError::Param(ParamProblem::NotUtf8 { path }));
    }
    if arg.starts_with("file://") {
        return load_text_paramfile(arg);
    }
    Ok(arg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A fresh file in the temp dir holding `contents`; returns its path.
    fn temp_file(contents: &[u8]) -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("kmsfs-awscli-test-{}-{n}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path.to_string_lossy().into_owned()
    }

    // --- read_blob_arg / read_text_arg ------------------------------------

    #[test]
    fn blob_literal_is_base64_decoded_like_python() {
        // Expected values from Python base64.b64decode (non-strict).
        assert_eq!(read_blob_arg("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(read_blob_arg("aGVs bG8=\n").unwrap(), b"hello");
        assert_eq!(read_blob_arg("aGVsbG8=garbage").unwrap(), b"hello");
        assert_eq!(read_blob_arg("aGV*sbG8=").unwrap(), b"hello");
        assert_eq!(read_blob_arg("aGVsbG9=").unwrap(), b"hello"); // trailing bits ignored
        assert_eq!(read_blob_arg("!!!").unwrap(), b"");
        assert_eq!(read_blob_arg("").unwrap(), b"");
        assert_eq!(read_blob_arg("AAECAw==").unwrap(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn blob_bad_base64() {
        let err = read_blob_arg("aGVsbG8").unwrap_err();
        assert_eq!(err.to_string(), "Invalid base64: \"aGVsbG8\"");
        assert_eq!(
            err,
            ArgError::InvalidBase64 {
                value: "aGVsbG8".into(),
                reason: "Incorrect padding".into()
            }
        );
        assert_eq!(err.with_param("--plaintext"), "Invalid base64: \"aGVsbG8\"");
        let err = read_blob_arg("ab=c").unwrap_err();
        assert!(
            matches!(err, ArgError::InvalidBase64 { ref reason, .. } if reason == "Incorrect padding")
        );
        match read_blob_arg("aGVsbG8xa").unwrap_err() {
            ArgError::InvalidBase64 { reason, .. } => assert_eq!(
                reason,
                "Invalid base64-encoded string: number of data characters (9) cannot be 1 more than a multiple of 4"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn blob_fileb_is_raw_bytes() {
        let bytes = [0u8, 159, 146, 150, b'\r', b'\n', 255];
        let path = temp_file(&bytes);
        assert_eq!(read_blob_arg(&format!("fileb://{path}")).unwrap(), bytes);
    }

    #[test]
    fn blob_file_is_text_then_base64() {
        let path = temp_file(b"aGVs\r\nbG8=\n");
        assert_eq!(read_blob_arg(&format!("file://{path}")).unwrap(), b"hello");
        let path = temp_file(b"not base64\n");
        assert_eq!(
            read_blob_arg(&format!("file://{path}"))
                .unwrap_err()
                .to_string(),
            "Invalid base64: \"not base64\n\""
        );
    }

    #[test]
    fn missing_paramfile() {
        for prefix in ["file://", "fileb://"] {
            let arg = format!("{prefix}/nonexistent/kmsfs/x");
            let want = format!(
                "Error parsing parameter: Unable to load paramfile {arg}: [Errno 2] No such file or directory: '/nonexistent/kmsfs/x'"
            );
            let err = read_blob_arg(&arg).unwrap_err();
            assert_eq!(err.to_string(), want);
            assert_eq!(read_text_arg(&arg).unwrap_err().to_string(), want);
            assert_eq!(
                err.with_param("--ciphertext-blob"),
                want.replace("parameter:", "parameter '--ciphertext-blob':")
            );
        }
    }

    #[test]
    fn paramfile_is_directory() {
        let dir = std::env::temp_dir();
        let dir = dir.to_string_lossy();
        let err = read_text_arg(&format!("file://{dir}"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "Error parsing parameter: Unable to load paramfile file://{dir}: [Errno 21] Is a directory: '{dir}'"
            )
        );
    }

    #[test]
    fn text_arg_forms() {
        assert_eq!(read_text_arg("plain value").unwrap(), "plain value");
        assert_eq!(read_text_arg("alias/my-key").unwrap(), "alias/my-key");
        let path = temp_file("déjà vu\r\nline2\rline3\n".as_bytes());
        assert_eq!(
            read_text_arg(&format!("file://{path}")).unwrap(),
            "déjà vu\nline2\nline3\n"
        );
        assert_eq!(
            read_text_arg(&format!("fileb://{path}")).unwrap(),
            "déjà vu\r\nline2\rline3\n"
        );
    }

    #[test]
    fn text_arg_binary_file() {
        let path = temp_file(&[0xff, 0xfe, 0x00]);
        assert_eq!(
            read_text_arg(&format!("file://{path}"))
                .unwrap_err()
                .to_string(),
            format!(
                "Error parsing parameter: Unable to load paramfile ({path}), text contents could not be decoded.  If this is a binary file, please use the fileb:// prefix instead of the file:// prefix."
            )
        );
        assert!(matches!(
            read_text_arg(&format!("fileb://{path}")).unwrap_err(),
            ArgError::Param(ParamProblem::NotUtf8 { .. })
        ));
    }

    #[test]
    fn paramfile_path_expansion() {
        let home = std::env::var("HOME").unwrap_or_default();
        if !home.is_empty() {
            let home = home.trim_end_matches('/');
            assert_eq!(expand_path("~/x"), format!("{home}/x"));
            assert_eq!(expand_path("$HOME/x"), format!("{home}/x"));
            assert_eq!(expand_path("${HOME}/x"), format!("{home}/x"));
        }
        assert_eq!(expand_path("~other/x"), "~other/x");
        assert_eq!(
            expand_path("/a/$KMSFS_SURELY_UNSET_VAR/b$"),
            "/a/$KMSFS_SURELY_UNSET_VAR/b$"
        );
        assert_eq!(expand_path("/plain/path"), "/plain/path");
    }
}
