//! The region, resolved as the AWS CLI resolves it: `--region`, then
//! `AWS_REGION`, then `AWS_DEFAULT_REGION`, then the `region` of the profile
//! (`--profile`, else `AWS_PROFILE`, else `default`) in the AWS config file
//! (`AWS_CONFIG_FILE`, else `~/.aws/config`).

use std::path::PathBuf;

/// The region named by the flag, the environment or the config file; None
/// when none names one (the AWS CLI then refuses; callers pick a default).
pub(crate) fn resolve_region(flag: Option<&str>, profile_flag: Option<&str>) -> Option<String> {
    resolve_with(
        flag,
        profile_flag,
        &|name| std::env::var(name).ok(),
        &|path| std::fs::read_to_string(path).ok(),
    )
}

/// [`resolve_region`] with the environment and the file system passed in.
fn resolve_with(
    flag: Option<&str>,
    profile_flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    read: &dyn Fn(&PathBuf) -> Option<String>,
) -> Option<String> {
    if let Some(r) = flag.filter(|r| !r.is_empty()) {
        return Some(r.to_owned());
    }
    for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Some(r) = env(var).filter(|r| !r.is_empty()) {
            return Some(r);
        }
    }
    let profile = profile_flag
        .map(str::to_owned)
        .or_else(|| env("AWS_PROFILE"))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".into());
    let config = env("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".aws/config")))?;
    config_region(&read(&config)?, &profile)
}

/// The `region` of `profile` in the text of an AWS config file: the section
/// `[default]`, or `[profile NAME]` for any other profile.
fn config_region(text: &str, profile: &str) -> Option<String> {
    let wanted = if profile == "default" {
        "default".to_owned()
    } else {
        format!("profile {profile}")
    };
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name.split_whitespace().collect::<Vec<_>>().join(" ") == wanted;
        } else if in_section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == "region"
            && !v.trim().is_empty()
        {
            return Some(v.trim().to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str =
        "[default]\nregion = us-east-1\n\n[profile eu]\noutput=json\nregion=eu-west-1\n";

    fn resolve(flag: Option<&str>, profile: Option<&str>, vars: &[(&str, &str)]) -> Option<String> {
        let env = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        };
        let read = |p: &PathBuf| (p == &PathBuf::from("/h/.aws/config")).then(|| CONFIG.to_owned());
        resolve_with(flag, profile, &env, &read)
    }

    #[test]
    fn flag_then_environment_then_config_file() {
        let all = [
            ("AWS_REGION", "ap-south-1"),
            ("AWS_DEFAULT_REGION", "sa-east-1"),
            ("HOME", "/h"),
        ];
        assert_eq!(
            resolve(Some("eu-north-1"), None, &all).as_deref(),
            Some("eu-north-1")
        );
        assert_eq!(resolve(None, None, &all).as_deref(), Some("ap-south-1"));
        assert_eq!(resolve(None, None, &all[1..]).as_deref(), Some("sa-east-1"));
        assert_eq!(resolve(None, None, &all[2..]).as_deref(), Some("us-east-1"));
        assert_eq!(
            resolve(None, Some("eu"), &all[2..]).as_deref(),
            Some("eu-west-1")
        );
        let eu = [("HOME", "/h"), ("AWS_PROFILE", "eu")];
        assert_eq!(resolve(None, None, &eu).as_deref(), Some("eu-west-1"));
        assert_eq!(resolve(None, Some("nosuch"), &eu), None);
        assert_eq!(resolve(None, None, &[]), None);
        // An empty variable does not count, as with the AWS CLI.
        let empty = [("AWS_REGION", ""), ("HOME", "/h")];
        assert_eq!(resolve(None, None, &empty).as_deref(), Some("us-east-1"));
    }
}
