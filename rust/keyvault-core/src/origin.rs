//! Which `[auth]` group may receive a URL's credential: scheme, host, port and a path prefix that
//! ends on a segment boundary. One matcher, shared by every place that releases a secret.

use url::Url;

use crate::error::{Error, ErrorKind, Result};

/// An `[auth]` group as far as matching is concerned.
#[derive(Debug, Clone, Copy)]
pub struct GroupPrefix<'a> {
    /// `GROUP.prefix`: `https://host[:port]/path` or, without a scheme, `host[:port]/path`.
    pub prefix: &'a str,
    /// `GROUP.schemes`, used only when the prefix has no scheme (Mercurial's default is https).
    pub schemes: &'a [String],
    /// `GROUP.username`, if set.
    pub username: Option<&'a str>,
}

/// A parsed prefix: the origin plus the path it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
    path: String,
    user: Option<String>,
}

fn reject_control_chars(what: &str, text: &str) -> Result<()> {
    if text.chars().any(char::is_control) {
        return Err(Error::new(
            ErrorKind::BadConfig,
            format!("the {what} contains a control character"),
        )
        .with_hint("remove any newline, carriage return, tab or NUL from it"));
    }
    Ok(())
}

/// The port a URL talks to; the `url` crate knows no default for `ssh` (`ssh://h/` is port 22).
fn effective_port(url: &Url) -> Option<u16> {
    url.port_or_known_default()
        .or_else(|| url.scheme().eq_ignore_ascii_case("ssh").then_some(22))
}

fn origin_of(url: &Url) -> Option<Origin> {
    Some(Origin {
        scheme: url.scheme().to_ascii_lowercase(),
        host: url.host_str()?.to_ascii_lowercase(),
        port: effective_port(url),
        path: url.path().to_string(),
        user: Some(url.username())
            .filter(|u| !u.is_empty())
            .map(str::to_string),
    })
}

/// The origins a prefix stands for: one per scheme when it names none.
fn prefix_origins(group: &GroupPrefix<'_>) -> Vec<Origin> {
    let prefix = group.prefix.trim();
    // A wildcard or empty prefix would send the secret anywhere: it never matches.
    if prefix.is_empty() || prefix == "*" || prefix.contains('*') {
        return Vec::new();
    }
    let candidates: Vec<String> = if prefix.contains("://") {
        vec![prefix.to_string()]
    } else {
        let schemes: Vec<&str> = if group.schemes.is_empty() {
            vec!["https"]
        } else {
            group.schemes.iter().map(String::as_str).collect()
        };
        schemes.iter().map(|s| format!("{s}://{prefix}")).collect()
    };
    candidates
        .iter()
        .filter_map(|text| Url::parse(text).ok())
        .filter_map(|url| origin_of(&url))
        .collect()
}

/// True when `path` lies under `prefix` on a segment boundary (`/repos` covers `/repos/x`, not `/repos2`).
fn path_covers(prefix: &str, path: &str) -> bool {
    if prefix.is_empty() || prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

/// The index of the group whose prefix covers `url` most specifically (the longest path; on a tie
/// the first that names a username, else the first), or `None`. `user` is the username the URL
/// itself carries, if any: a group whose username differs does not match. Both rules are
/// Mercurial's own (`httpconnection.readauthforuri`), so hg and the vault agree on the group.
pub fn best_match(
    url: &str,
    groups: &[GroupPrefix<'_>],
    user: Option<&str>,
) -> Result<Option<usize>> {
    reject_control_chars("URL", url)?;
    let Some(target) = Url::parse(url).ok().and_then(|u| origin_of(&u)) else {
        return Ok(None);
    };
    let user = user.or(target.user.as_deref());
    // (index, path length, whether the group names a username)
    let mut best: Option<(usize, usize, bool)> = None;
    for (index, group) in groups.iter().enumerate() {
        reject_control_chars("[auth] prefix", group.prefix)?;
        if let (Some(wanted), Some(configured)) = (user, group.username) {
            if wanted != configured {
                continue;
            }
        }
        for origin in prefix_origins(group) {
            let user_ok = match (&origin.user, user) {
                (Some(prefix_user), Some(u)) => prefix_user == u,
                (Some(_), None) => false,
                (None, _) => true,
            };
            let covers = origin.scheme == target.scheme
                && origin.host == target.host
                && origin.port == target.port
                && user_ok
                && path_covers(&origin.path, &target.path);
            let len = origin.path.len();
            let named = group.username.is_some();
            let better = best.is_none_or(|(_, best_len, best_named)| {
                len > best_len || (len == best_len && named && !best_named)
            });
            if covers && better {
                best = Some((index, len, named));
            }
        }
    }
    Ok(best.map(|(index, _, _)| index))
}

/// Why one `[auth]` group does or does not cover a URL (for `hg vault check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The group's prefix covers the URL (the best match among several is [`best_match`]'s).
    pub covers: bool,
    /// One phrase: what matched, or the first thing that did not.
    pub reason: String,
}

/// For each group, whether it covers `url` and why (or why not), judged exactly as
/// [`best_match`] judges.
pub fn explain(url: &str, groups: &[GroupPrefix<'_>], user: Option<&str>) -> Result<Vec<Verdict>> {
    reject_control_chars("URL", url)?;
    let Some(target) = Url::parse(url).ok().and_then(|u| origin_of(&u)) else {
        return Err(Error::new(
            ErrorKind::BadConfig,
            format!("'{}' is not a URL", url.escape_debug()),
        )
        .with_hint("give a full URL, e.g. https://hg.contoso.com/repo"));
    };
    let user = user.or(target.user.as_deref());
    let no = |reason: String| Verdict {
        covers: false,
        reason,
    };
    let mut out = Vec::new();
    for group in groups {
        reject_control_chars("[auth] prefix", group.prefix)?;
        if let (Some(wanted), Some(configured)) = (user, group.username) {
            if wanted != configured {
                out.push(no(format!(
                    "its username {configured} is not the URL's user {wanted}"
                )));
                continue;
            }
        }
        let origins = prefix_origins(group);
        if origins.is_empty() {
            out.push(no(format!(
                "its prefix '{}' is empty, a wildcard or not a URL, which never releases a vault secret",
                group.prefix.escape_debug()
            )));
            continue;
        }
        let mut why_not = None;
        let mut covered = None;
        for origin in &origins {
            let port = |p: Option<u16>| p.map_or_else(|| "none".to_owned(), |p| p.to_string());
            let reason = if origin.scheme != target.scheme {
                Some(format!("scheme {} is not {}", target.scheme, origin.scheme))
            } else if origin.host != target.host {
                Some(format!("host {} is not {}", target.host, origin.host))
            } else if origin.port != target.port {
                Some(format!(
                    "port {} is not {}",
                    port(target.port),
                    port(origin.port)
                ))
            } else if origin.user.is_some() && origin.user.as_deref() != user {
                Some(format!(
                    "the prefix names user {} but the URL's user is {}",
                    origin.user.as_deref().unwrap_or_default(),
                    user.unwrap_or("none")
                ))
            } else if !path_covers(&origin.path, &target.path) {
                Some(format!(
                    "path {} is not under {} (on a segment boundary)",
                    target.path, origin.path
                ))
            } else {
                None
            };
            match reason {
                None => {
                    // The port belongs in the sentence: it is part of what matched.
                    let host = if origin.host.contains(':') {
                        format!("[{}]", origin.host)
                    } else {
                        origin.host.clone()
                    };
                    let default = match origin.scheme.as_str() {
                        "https" => Some(443),
                        "http" => Some(80),
                        "ssh" => Some(22),
                        _ => None,
                    };
                    let port = match origin.port {
                        Some(p) if Some(p) != default => format!(":{p}"),
                        _ => String::new(),
                    };
                    covered = Some(format!(
                        "{}://{host}{port}{} covers it (scheme, host, port and path)",
                        origin.scheme,
                        if origin.path.is_empty() {
                            "/"
                        } else {
                            &origin.path
                        }
                    ));
                    break;
                }
                Some(r) => {
                    why_not.get_or_insert(r);
                }
            }
        }
        out.push(match covered {
            Some(reason) => Verdict {
                covers: true,
                reason,
            },
            None => no(why_not.unwrap_or_default()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group<'a>(prefix: &'a str, schemes: &'a [String]) -> GroupPrefix<'a> {
        GroupPrefix {
            prefix,
            schemes,
            username: None,
        }
    }

    fn matches(prefix: &str, url: &str) -> bool {
        let schemes = vec!["https".to_string()];
        best_match(url, &[group(prefix, &schemes)], None).unwrap() == Some(0)
    }

    #[test]
    fn host_must_match_exactly_not_as_a_string_prefix() {
        assert!(matches(
            "https://hg.contoso.com/",
            "https://hg.contoso.com/repo"
        ));
        assert!(!matches(
            "https://hg.contoso.com",
            "https://hg.contoso.com.evil.org/repo"
        ));
        assert!(!matches(
            "hg.contoso.com",
            "https://hg.contoso.com.evil.org/repo"
        ));
        assert!(!matches(
            "https://hg.contoso.com/",
            "https://evil.org/hg.contoso.com/"
        ));
        assert!(matches(
            "https://HG.Contoso.com/",
            "https://hg.contoso.com/repo"
        ));
    }

    #[test]
    fn path_matches_on_segment_boundaries() {
        assert!(matches("https://h/repos", "https://h/repos"));
        assert!(matches("https://h/repos", "https://h/repos/a"));
        assert!(matches("https://h/repos/", "https://h/repos/a"));
        assert!(!matches("https://h/repos", "https://h/repos2"));
        assert!(!matches("https://h/repos", "https://h/"));
    }

    #[test]
    fn scheme_and_port_must_match() {
        assert!(!matches("https://h/", "http://h/"));
        assert!(matches("https://h/", "https://h:443/x"));
        assert!(!matches("https://h/", "https://h:8443/x"));
        assert!(matches("https://h:8443/", "https://h:8443/x"));
        assert!(!matches("h:8443", "https://h/x"));
    }

    #[test]
    fn ssh_urls_match_on_user_host_and_port_22_by_default() {
        let s = vec!["https".to_string()];
        assert!(matches(
            "ssh://hg.contoso.com/",
            "ssh://hg.contoso.com//srv/repo"
        ));
        assert!(matches(
            "ssh://hg.contoso.com:22/",
            "ssh://hg.contoso.com/repo"
        ));
        assert!(!matches(
            "ssh://hg.contoso.com/",
            "ssh://hg.contoso.com:2222/repo"
        ));
        assert!(!matches(
            "ssh://hg.contoso.com/",
            "https://hg.contoso.com/repo"
        ));
        assert!(!matches(
            "https://hg.contoso.com/",
            "ssh://hg.contoso.com/repo"
        ));
        let ssh = vec!["ssh".to_string()];
        assert_eq!(
            best_match("ssh://hg@h/r", &[group("h/", &ssh)], None).unwrap(),
            Some(0)
        );
        let g = GroupPrefix {
            prefix: "ssh://h/",
            schemes: &s,
            username: Some("hg"),
        };
        assert_eq!(best_match("ssh://mallory@h/r", &[g], None).unwrap(), None);
    }

    #[test]
    fn prefix_without_scheme_uses_the_group_schemes() {
        let http = vec!["http".to_string(), "https".to_string()];
        assert_eq!(
            best_match("http://h/x", &[group("h/x", &http)], None).unwrap(),
            Some(0)
        );
        let https_only = vec!["https".to_string()];
        assert_eq!(
            best_match("http://h/x", &[group("h/x", &https_only)], None).unwrap(),
            None
        );
    }

    #[test]
    fn wildcards_and_empty_prefixes_never_match() {
        assert!(!matches("*", "https://h/x"));
        assert!(!matches("", "https://h/x"));
        assert!(!matches(
            "https://*.contoso.com/",
            "https://a.contoso.com/x"
        ));
    }

    #[test]
    fn longest_prefix_wins_and_first_wins_a_tie() {
        let s = vec!["https".to_string()];
        let groups = [
            group("https://h/", &s),
            group("https://h/a", &s),
            group("https://h/a", &s),
        ];
        assert_eq!(best_match("https://h/a/b", &groups, None).unwrap(), Some(1));
        assert_eq!(best_match("https://h/b", &groups, None).unwrap(), Some(0));
    }

    #[test]
    fn on_a_tie_a_group_naming_the_user_wins_as_in_mercurial() {
        let s = vec!["https".to_string()];
        let shared = group("https://h/", &s);
        let bob = GroupPrefix {
            username: Some("bob"),
            ..group("https://h/", &s)
        };
        let groups = [shared, bob];
        // Otherwise hg would send bob's name with the shared group's password.
        assert_eq!(
            best_match("https://h/x", &groups, Some("bob")).unwrap(),
            Some(1)
        );
        assert_eq!(best_match("https://h/x", &groups, None).unwrap(), Some(1));
        assert_eq!(
            best_match("https://h/x", &groups, Some("alice")).unwrap(),
            Some(0)
        );
    }

    #[test]
    fn username_in_the_url_must_agree_with_the_group() {
        let s = vec!["https".to_string()];
        let g = GroupPrefix {
            prefix: "https://h/",
            schemes: &s,
            username: Some("ci-bot"),
        };
        assert_eq!(
            best_match("https://h/x", &[g], Some("ci-bot")).unwrap(),
            Some(0)
        );
        assert_eq!(
            best_match("https://h/x", &[g], Some("mallory")).unwrap(),
            None
        );
        assert_eq!(best_match("https://mallory@h/x", &[g], None).unwrap(), None);
    }

    #[test]
    fn control_characters_are_rejected() {
        let s = vec!["https".to_string()];
        let err = best_match(
            "https://h/x\r\nHost: evil",
            &[group("https://h/", &s)],
            None,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadConfig);
        assert!(best_match("https://h/x", &[group("https://h/\n", &s)], None).is_err());
    }

    #[test]
    fn unparsable_urls_match_nothing() {
        assert!(!matches("https://h/", "not a url"));
    }

    #[test]
    fn explain_says_why_each_group_does_or_does_not_match() {
        let https = vec!["https".to_owned()];
        let groups = [
            group("https://hg.contoso.com/repos", &https),
            group("https://hg.contoso.com/other", &https),
            group("http://hg.contoso.com/", &https),
            group("*", &https),
            GroupPrefix {
                prefix: "https://hg.contoso.com/",
                schemes: &https,
                username: Some("bob"),
            },
        ];
        let v = explain("https://hg.contoso.com/repos/app", &groups, Some("alice")).unwrap();
        assert!(v[0].covers, "{:?}", v[0]);
        assert_eq!(
            v[0].reason,
            "https://hg.contoso.com/repos covers it (scheme, host, port and path)"
        );
        let with_port = [group("https://localhost:52017", &https)];
        let ported = explain("https://localhost:52017/repo", &with_port, None).unwrap();
        assert_eq!(
            ported[0].reason,
            "https://localhost:52017/ covers it (scheme, host, port and path)"
        );
        assert!(!v[1].covers);
        assert!(v[1].reason.contains("not under /other"), "{}", v[1].reason);
        assert!(
            v[2].reason.contains("scheme https is not http"),
            "{}",
            v[2].reason
        );
        assert!(v[3].reason.contains("wildcard"));
        assert!(v[4].reason.contains("username bob"), "{}", v[4].reason);
        let v = explain("https://hg.contoso.com:8443/repos", &groups[..1], None).unwrap();
        assert!(
            v[0].reason.contains("port 8443 is not 443"),
            "{}",
            v[0].reason
        );
        assert!(explain("not a url", &groups, None).is_err());
    }
}
