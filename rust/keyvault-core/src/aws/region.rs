//! Which region a secret lives in: the ARN's own region, else `keyvault.aws-region`, else
//! `AWS_REGION`, `AWS_DEFAULT_REGION`, else the profile's `region` (the SDKs' order, with our
//! configuration key first). No region at all is a configuration error naming the ref.

use crate::error::Result;
use crate::secret_ref::SecretRef;

/// The regions known without a ref, in order of precedence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RegionSources {
    /// `keyvault.aws-region`.
    pub(crate) configured: Option<String>,
    /// `AWS_REGION`.
    pub(crate) aws_region: Option<String>,
    /// `AWS_DEFAULT_REGION`.
    pub(crate) aws_default_region: Option<String>,
    /// The profile's `region`.
    pub(crate) profile: Option<String>,
}

impl RegionSources {
    /// From `configured`, the process environment and the profile's region.
    pub(crate) fn from_env(configured: Option<&str>, profile: Option<&str>) -> Self {
        let var = |k: &str| std::env::var(k).ok();
        Self {
            configured: configured.map(str::to_owned),
            aws_region: var("AWS_REGION"),
            aws_default_region: var("AWS_DEFAULT_REGION"),
            profile: profile.map(str::to_owned),
        }
    }

    /// The default region (for `secret://` refs), if any source names one.
    pub(crate) fn default_region(&self) -> Option<&str> {
        [
            &self.configured,
            &self.aws_region,
            &self.aws_default_region,
            &self.profile,
        ]
        .into_iter()
        .flatten()
        .map(|r| r.trim())
        .find(|r| !r.is_empty())
    }

    /// The region of `secret_ref`: its ARN's, else the default one.
    pub(crate) fn region_for(&self, secret_ref: &SecretRef, subject: &str) -> Result<String> {
        if let Some(arn) = secret_ref.arn() {
            return Ok(arn.region().to_owned());
        }
        self.default_region()
            .map(str::to_owned)
            .ok_or_else(|| super::errors::no_region(subject))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn the_arn_wins_then_config_then_environment_then_profile() {
        let all = RegionSources {
            configured: Some("eu-west-1".into()),
            aws_region: Some("us-east-1".into()),
            aws_default_region: Some("us-west-2".into()),
            profile: Some("ap-south-1".into()),
        };
        let path = SecretRef::parse("secret://a").unwrap();
        let arn =
            SecretRef::parse("arn:aws:secretsmanager:eu-central-1:123456789012:secret:a").unwrap();
        assert_eq!(all.region_for(&arn, "s").unwrap(), "eu-central-1");
        assert_eq!(all.region_for(&path, "s").unwrap(), "eu-west-1");
        let env = RegionSources {
            configured: None,
            ..all.clone()
        };
        assert_eq!(env.default_region(), Some("us-east-1"));
        let default = RegionSources {
            configured: None,
            aws_region: Some(String::new()),
            ..all.clone()
        };
        assert_eq!(default.default_region(), Some("us-west-2"));
        let profile = RegionSources {
            profile: Some("ap-south-1".into()),
            ..Default::default()
        };
        assert_eq!(profile.default_region(), Some("ap-south-1"));
        let e = RegionSources::default()
            .region_for(&path, "secret secret://a")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadConfig);
        assert!(e
            .message()
            .starts_with("keyvault: no AWS region for secret secret://a"));
        assert!(RegionSources::default().region_for(&arn, "s").is_ok());
    }
}
