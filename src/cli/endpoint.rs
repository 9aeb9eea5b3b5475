//! `--endpoint-url` / `--aws-kms`: the flags of `kmsfs init` that put a
//! volume's keys in a KMS endpoint or AWS KMS instead of the embedded store.

use clap::Args;

use super::CliError;
use kmsfs_kms::cache::CacheLimits;
use kmsfs_volume::config::KeyServiceConfig;

#[derive(Debug, Clone, Args)]
pub(crate) struct EndpointArgs {
    /// Use the KMS at this URL (e.g. `kmsfs kms serve`) instead of the
    /// embedded store; requests are signed with AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY from the environment of init and mount.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// Use AWS KMS through the AWS SDK (standard credential and region
    /// chains; --endpoint-url then only overrides where requests go). Needs
    /// a kmsfs built with `--features aws-kms`.
    #[arg(long)]
    pub aws_kms: bool,
    /// With --aws-kms: the AWS region [default: the SDK's region chain].
    #[arg(long, requires = "aws_kms")]
    pub aws_region: Option<String>,
    /// With --endpoint-url: most unwrapped data keys the mount caches (0: no cache).
    #[arg(long, default_value_t = CacheLimits::default().max_keys)]
    pub cache_max_keys: usize,
    /// With --endpoint-url: seconds a cached data key may be used (a key
    /// disabled in the KMS stops new opens within this time).
    #[arg(long, default_value_t = CacheLimits::default().max_age_seconds)]
    pub cache_max_age: i64,
}

impl EndpointArgs {
    /// The remote key service these flags name; `None` for the embedded store.
    pub(crate) fn key_service(&self) -> Result<Option<KeyServiceConfig>, CliError> {
        let service = if self.aws_kms {
            KeyServiceConfig::Aws {
                region: self.aws_region.clone(),
                endpoint_url: self.endpoint_url.clone(),
                cache_max_keys: self.cache_max_keys,
                cache_max_age_seconds: self.cache_max_age,
            }
        } else if let Some(url) = &self.endpoint_url {
            KeyServiceConfig::Endpoint {
                url: url.clone(),
                cache_max_keys: self.cache_max_keys,
                cache_max_age_seconds: self.cache_max_age,
            }
        } else {
            return Ok(None);
        };
        if self.cache_max_age < 0 {
            return Err(CliError::Usage(
                "--cache-max-age must not be negative".into(),
            ));
        }
        Ok(Some(service))
    }
}
