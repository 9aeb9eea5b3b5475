//! Mount options (`-o` and fstab): what goes into the mount(2) flags, what
//! into the FUSE option string, and the daemon's own settings (caching,
//! background rotation). mount(8)-only options are accepted and ignored.

use std::time::Duration;

use nix::mount::MsFlags;

use super::error::DaemonError;
use crate::fs::Tuning;
use kmsfs_volume::backing::Atime;

/// How to mount and serve, from the mount options.
#[derive(Debug, Clone)]
pub struct MountOptions {
    pub(crate) flags: MsFlags,
    pub(crate) allow_other: bool,
    pub(crate) read_only: bool,
    /// Background re-wrapping: files per second (None: unthrottled).
    pub(crate) rotate_rate: Option<f64>,
    /// How often the rotation task checks the CMK for a new version.
    pub(crate) rotate_interval: Duration,
    pub(crate) tuning: Tuning,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            // nosuid and nodev unless asked otherwise, as fusermount does.
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            allow_other: false,
            read_only: false,
            rotate_rate: None,
            rotate_interval: Duration::from_secs(60),
            tuning: Tuning::default(),
        }
    }
}

impl MountOptions {
    /// Parses options in order (a later one overrides an earlier one); blank
    /// entries are skipped.
    pub fn parse(opts: &[String]) -> Result<MountOptions, DaemonError> {
        use MsFlags as F;
        let mut plan = MountOptions::default();
        for opt in opts.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            match opt {
                "allow_other" => plan.allow_other = true,
                "ro" => {
                    plan.read_only = true;
                    plan.flags |= F::MS_RDONLY;
                }
                "rw" => {
                    plan.read_only = false;
                    plan.flags.remove(F::MS_RDONLY);
                }
                "noexec" => plan.flags |= F::MS_NOEXEC,
                "exec" => plan.flags.remove(F::MS_NOEXEC),
                "nosuid" => plan.flags |= F::MS_NOSUID,
                "suid" => plan.flags.remove(F::MS_NOSUID),
                "nodev" => plan.flags |= F::MS_NODEV,
                "dev" => plan.flags.remove(F::MS_NODEV),
                // The atime policies exclude each other, as mount(8) has
                // them: the last one given wins.
                "noatime" => {
                    plan.flags.remove(F::MS_RELATIME | F::MS_STRICTATIME);
                    plan.flags |= F::MS_NOATIME;
                }
                "relatime" => {
                    plan.flags.remove(F::MS_NOATIME | F::MS_STRICTATIME);
                    plan.flags |= F::MS_RELATIME;
                }
                "strictatime" => {
                    plan.flags.remove(F::MS_NOATIME | F::MS_RELATIME);
                    plan.flags |= F::MS_STRICTATIME;
                }
                "norelatime" => plan.flags.remove(F::MS_RELATIME),
                "nostrictatime" => plan.flags.remove(F::MS_STRICTATIME),
                "atime" => plan.flags.remove(F::MS_NOATIME),
                "nodiratime" => plan.flags |= F::MS_NODIRATIME,
                "diratime" => plan.flags.remove(F::MS_NODIRATIME),
                "lazytime" => plan.flags |= F::MS_LAZYTIME,
                "nolazytime" => plan.flags.remove(F::MS_LAZYTIME),
                "sync" => plan.flags |= F::MS_SYNCHRONOUS,
                "async" => plan.flags.remove(F::MS_SYNCHRONOUS),
                "dirsync" => plan.flags |= F::MS_DIRSYNC,
                // Options for mount(8) and fstab, not for the filesystem.
                "defaults"
                | "_netdev"
                | "nofail"
                | "auto"
                | "noauto"
                | "user"
                | "nouser"
                | "users"
                | "default_permissions" => {}
                other if other.starts_with("x-") || other.starts_with("comment=") => {}
                "writeback_cache" => plan.tuning.writeback_cache = true,
                "no_writeback_cache" => plan.tuning.writeback_cache = false,
                "keep_cache" => plan.tuning.keep_cache = true,
                "no_keep_cache" => plan.tuning.keep_cache = false,
                other if other.starts_with("attr_timeout=") => {
                    let v = &other["attr_timeout=".len()..];
                    plan.tuning.attr_ttl = parse_seconds("attr_timeout", v)?;
                }
                other if other.starts_with("rotate_rate=") => {
                    let v = &other["rotate_rate=".len()..];
                    plan.rotate_rate = Some(parse_rate("rotate_rate", v)?);
                }
                other if other.starts_with("rotate_interval=") => {
                    let v = &other["rotate_interval=".len()..];
                    let secs: u64 = v.parse().map_err(|_| {
                        DaemonError::BadOption(format!("rotate_interval={v}: expected seconds"))
                    })?;
                    plan.rotate_interval = Duration::from_secs(secs.max(1));
                }
                other => {
                    return Err(DaemonError::BadOption(format!(
                        "unknown mount option: {other}"
                    )));
                }
            }
        }
        // Reads by the daemon move the backing file's access time unless
        // it opens with O_NOATIME: that is how these options take effect
        // (see `Tuning::file_atime`).
        if plan.read_only || plan.flags.contains(F::MS_NOATIME) {
            plan.tuning.file_atime = Atime::Kept;
            plan.tuning.dir_atime = Atime::Kept;
        } else {
            plan.tuning.file_atime = Atime::Updated;
            plan.tuning.dir_atime = if plan.flags.contains(F::MS_NODIRATIME) {
                Atime::Kept
            } else {
                Atime::Updated
            };
        }
        Ok(plan)
    }
}

/// The longest kernel cache timeout accepted, in seconds: an hour.
const MAX_TIMEOUT_SECS: f64 = 3600.0;

/// A cache timeout in seconds, from 0 to an hour. Refused otherwise, NaN and
/// infinities included: `Duration::from_secs_f64` panics on NaN, which
/// killed the mount, and silently clamping a typo hides it.
fn parse_seconds(name: &str, v: &str) -> Result<Duration, DaemonError> {
    let bad = || {
        DaemonError::BadOption(format!(
            "{name}={v}: expected seconds from 0 to {MAX_TIMEOUT_SECS}"
        ))
    };
    let secs: f64 = v.parse().map_err(|_| bad())?;
    if !(0.0..=MAX_TIMEOUT_SECS).contains(&secs) {
        return Err(bad());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

/// Files per second, within the range the rotation throttle paces (a rate
/// of 1e-300 would never rotate a file; NaN means nothing).
fn parse_rate(name: &str, v: &str) -> Result<f64, DaemonError> {
    use kmsfs_volume::rotate::Throttle;
    let bad = || {
        DaemonError::BadOption(format!(
            "{name}={v}: expected files per second from {} to {}",
            Throttle::MIN_RATE,
            Throttle::MAX_RATE
        ))
    };
    let rate: f64 = v.parse().map_err(|_| bad())?;
    if !(Throttle::MIN_RATE..=Throttle::MAX_RATE).contains(&rate) {
        return Err(bad());
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(opts: &[&str]) -> Result<MountOptions, DaemonError> {
        MountOptions::parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn bad_option(opts: &[&str]) -> String {
        match parse(opts) {
            Err(DaemonError::BadOption(m)) => m,
            other => panic!("expected a bad option, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_nosuid_nodev_read_write() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_NODEV);
        assert!(!o.allow_other && !o.read_only);
        assert_eq!(o.rotate_rate, None);
        assert_eq!(o.rotate_interval, Duration::from_secs(60));
        assert!(o.tuning.writeback_cache && o.tuning.keep_cache);
    }

    #[test]
    fn flags_are_set_and_cleared_in_order() {
        let o = parse(&["ro", "noexec", "suid", " dev ", "", "noatime"]).unwrap();
        assert!(o.read_only);
        assert_eq!(
            o.flags,
            MsFlags::MS_RDONLY | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME
        );
        let o = parse(&["ro", "rw", "noexec", "exec", "allow_other"]).unwrap();
        assert!(!o.read_only && o.allow_other);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_NODEV);
    }

    #[test]
    fn mount8_options_are_ignored() {
        let o = parse(&[
            "defaults",
            "_netdev",
            "nofail",
            "x-systemd.automount",
            "comment=x",
        ])
        .unwrap();
        assert_eq!(o.flags, MountOptions::default().flags);
    }

    #[test]
    fn atime_policies_exclude_each_other() {
        use MsFlags as F;
        let atime = F::MS_NOATIME | F::MS_RELATIME | F::MS_STRICTATIME;
        for (opts, want) in [
            (&["strictatime"][..], F::MS_STRICTATIME),
            (&["noatime", "strictatime"][..], F::MS_STRICTATIME),
            (&["strictatime", "relatime"][..], F::MS_RELATIME),
            (&["relatime", "noatime"][..], F::MS_NOATIME),
            (&["noatime", "atime"][..], F::empty()),
            (&["relatime", "norelatime"][..], F::empty()),
        ] {
            assert_eq!(parse(opts).unwrap().flags & atime, want, "{opts:?}");
        }
        let o = parse(&["lazytime", "nodiratime"]).unwrap();
        assert!(o.flags.contains(F::MS_LAZYTIME | F::MS_NODIRATIME));
        let o = parse(&["lazytime", "nolazytime", "nodiratime", "diratime"]).unwrap();
        assert!(!o.flags.intersects(F::MS_LAZYTIME | F::MS_NODIRATIME));
    }

    #[test]
    fn atime_options_decide_whether_the_daemons_reads_keep_atime() {
        use Atime::{Kept, Updated};
        for (opts, file, dir) in [
            (&[][..], Updated, Updated),
            (&["relatime"][..], Updated, Updated),
            (&["strictatime"][..], Updated, Updated),
            (&["nodiratime"][..], Updated, Kept),
            (&["noatime"][..], Kept, Kept),
            (&["noatime", "relatime"][..], Updated, Updated),
            (&["ro"][..], Kept, Kept),
            (&["ro", "rw"][..], Updated, Updated),
        ] {
            let t = parse(opts).unwrap().tuning;
            assert_eq!((t.file_atime, t.dir_atime), (file, dir), "{opts:?}");
        }
    }

    #[test]
    fn daemon_settings_are_parsed_and_bounded() {
        let o = parse(&[
            "no_writeback_cache",
            "no_keep_cache",
            "attr_timeout=3600",
            "rotate_rate=2.5",
            "rotate_interval=0",
        ])
        .unwrap();
        assert!(!o.tuning.writeback_cache && !o.tuning.keep_cache);
        assert_eq!(o.tuning.attr_ttl, Duration::from_secs(3600));
        assert_eq!(o.rotate_rate, Some(2.5));
        assert_eq!(o.rotate_interval, Duration::from_secs(1));
        assert_eq!(
            parse(&["attr_timeout=0"]).unwrap().tuning.attr_ttl,
            Duration::ZERO
        );
        assert_eq!(
            parse(&["attr_timeout=0.25"]).unwrap().tuning.attr_ttl,
            Duration::from_millis(250)
        );
        assert_eq!(
            parse(&["rotate_rate=0.001"]).unwrap().rotate_rate,
            Some(0.001)
        );
    }

    #[test]
    fn numeric_options_out_of_range_are_refused_not_panicked_on() {
        // NaN used to panic the mount; 1e-300 killed the rotation thread.
        for v in [
            "nan", "NaN", "inf", "-inf", "infinity", "-1", "-0.5", "3600.5", "7200", "1e300",
        ] {
            assert_eq!(
                bad_option(&[&format!("attr_timeout={v}")]),
                format!("attr_timeout={v}: expected seconds from 0 to 3600")
            );
        }
        for v in [
            "nan", "inf", "-inf", "0", "-1", "1e-300", "0.0009", "1e7", "1e300",
        ] {
            assert_eq!(
                bad_option(&[&format!("rotate_rate={v}")]),
                format!("rotate_rate={v}: expected files per second from 0.001 to 1000000")
            );
        }
    }

    #[test]
    fn bad_options_say_what_is_wrong() {
        assert_eq!(bad_option(&["bogus"]), "unknown mount option: bogus");
        assert_eq!(
            bad_option(&["attr_timeout=x"]),
            "attr_timeout=x: expected seconds from 0 to 3600"
        );
        assert_eq!(
            bad_option(&["rotate_rate=fast"]),
            "rotate_rate=fast: expected files per second from 0.001 to 1000000"
        );
        assert_eq!(
            bad_option(&["rotate_interval=-3"]),
            "rotate_interval=-3: expected seconds"
        );
    }
}
