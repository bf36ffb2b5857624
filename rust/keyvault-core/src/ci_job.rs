//! Which CI job is running, from the variables each CI sets, so that every vault request
//! (User-Agent) and audit line can name the job as well as the commit. Nothing here is secret:
//! run and job ids are what the CI shows in its own logs.

/// A detected CI job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiJob {
    /// `github-actions`, `forgejo-actions`, `gitea-actions`, `azure-pipelines`, `gitlab-ci`,
    /// `heptapod-ci` or `jenkins`.
    pub system: &'static str,
    /// The job, as that CI names it: `<run id>/<job>` for Actions, `<build id>/<job>` for Azure
    /// Pipelines, the job id for GitLab/Heptapod, `BUILD_TAG` for Jenkins.
    pub id: String,
}

impl CiJob {
    /// `system:id`, the form the User-Agent and the audit log carry.
    pub fn describe(&self) -> String {
        format!("{}:{}", self.system, self.id)
    }
}

/// Variables read, in the order checked.
pub const CI_ENV_NAMES: &[&str] = &[
    "GITHUB_ACTIONS",
    "FORGEJO_ACTIONS",
    "GITEA_ACTIONS",
    "GITHUB_RUN_ID",
    "GITHUB_JOB",
    "TF_BUILD",
    "BUILD_BUILDID",
    "SYSTEM_JOBNAME",
    "GITLAB_CI",
    "CI_SERVER_NAME",
    "CI_JOB_ID",
    "JENKINS_URL",
    "BUILD_TAG",
];

/// The job running this process, from `get` (the process environment in production).
pub fn detect(get: impl Fn(&str) -> Option<String>) -> Option<CiJob> {
    let var = |n: &str| get(n).filter(|v| !v.trim().is_empty());
    let join = |a: Option<String>, b: Option<String>| match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}/{b}")),
        (a, b) => a.or(b),
    };
    if var("GITHUB_ACTIONS").is_some() || var("GITHUB_RUN_ID").is_some() {
        let system = if var("FORGEJO_ACTIONS").is_some() {
            "forgejo-actions"
        } else if var("GITEA_ACTIONS").is_some() {
            "gitea-actions"
        } else {
            "github-actions"
        };
        let id = join(var("GITHUB_RUN_ID"), var("GITHUB_JOB"))?;
        return Some(CiJob { system, id });
    }
    if var("TF_BUILD").is_some() {
        let id = join(var("BUILD_BUILDID"), var("SYSTEM_JOBNAME"))?;
        return Some(CiJob {
            system: "azure-pipelines",
            id,
        });
    }
    if var("GITLAB_CI").is_some() {
        let heptapod =
            var("CI_SERVER_NAME").is_some_and(|n| n.to_ascii_lowercase().contains("heptapod"));
        return Some(CiJob {
            system: if heptapod { "heptapod-ci" } else { "gitlab-ci" },
            id: var("CI_JOB_ID")?,
        });
    }
    if var("JENKINS_URL").is_some() || var("BUILD_TAG").is_some_and(|t| t.starts_with("jenkins-")) {
        return Some(CiJob {
            system: "jenkins",
            id: var("BUILD_TAG")?,
        });
    }
    None
}

/// The job running this process, from its environment.
pub fn from_process() -> Option<CiJob> {
    detect(|n| std::env::var(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(pairs: &[(&str, &str)]) -> Option<String> {
        detect(|n| pairs.iter().find(|p| p.0 == n).map(|p| p.1.to_owned())).map(|j| j.describe())
    }

    #[test]
    fn each_ci_names_its_job() {
        assert_eq!(job(&[]), None);
        assert_eq!(
            job(&[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_RUN_ID", "123"),
                ("GITHUB_JOB", "build")
            ]),
            Some("github-actions:123/build".into())
        );
        assert_eq!(
            job(&[
                ("GITHUB_ACTIONS", "true"),
                ("FORGEJO_ACTIONS", "true"),
                ("GITHUB_RUN_ID", "7"),
                ("GITHUB_JOB", "test")
            ]),
            Some("forgejo-actions:7/test".into())
        );
        assert_eq!(
            job(&[
                ("TF_BUILD", "True"),
                ("BUILD_BUILDID", "4711"),
                ("SYSTEM_JOBNAME", "Job")
            ]),
            Some("azure-pipelines:4711/Job".into())
        );
        assert_eq!(
            job(&[("GITLAB_CI", "true"), ("CI_JOB_ID", "99")]),
            Some("gitlab-ci:99".into())
        );
        assert_eq!(
            job(&[
                ("GITLAB_CI", "true"),
                ("CI_SERVER_NAME", "Heptapod"),
                ("CI_JOB_ID", "5")
            ]),
            Some("heptapod-ci:5".into())
        );
        assert_eq!(
            job(&[
                ("JENKINS_URL", "https://ci/"),
                ("BUILD_TAG", "jenkins-app-main-12")
            ]),
            Some("jenkins:jenkins-app-main-12".into())
        );
        // A marker without an id names no job.
        assert_eq!(job(&[("GITLAB_CI", "true")]), None);
    }
}
