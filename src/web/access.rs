//! Who may see the web view (docs/web.md#access): one pure decision per request, from the
//! configured mode, the address the request came from, the proxy's user header and the
//! signed-in session. The handlers only carry it out.

use std::net::IpAddr;

/// `ui.auth` of the daemon configuration.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Anyone who can reach the view, which must then be loopback only.
    None,
    /// A trusted proxy in front (oauth2-proxy or similar) says who the user is in `header`;
    /// only requests from its addresses are taken.
    Proxy { header: String, from: Vec<IpAddr> },
    /// GitHub OAuth sign-in, for members of `orgs` or of `teams` (`@org/team`).
    GitHub(GitHubAuth),
}

#[derive(Clone, Debug)]
pub struct GitHubAuth {
    pub client_id: String,
    pub client_secret: crate::secret::Secret,
    pub orgs: Vec<String>,
    pub teams: Vec<String>,
    /// Where GitHub's sign-in pages are (`https://github.com`).
    pub web_url: String,
    /// The REST API, to ask who signed in and their memberships.
    pub api_url: String,
    /// The view's own address as a browser reaches it, for GitHub's redirect back.
    pub public_url: String,
}

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve it; the user, where known, is shown in the page header.
    Admit(Option<String>),
    /// 403 with this reason (it names no secret, only what is missing).
    Refuse(&'static str),
    /// Send the browser to sign in first.
    SignIn,
}

/// What a request says about itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Request<'a> {
    /// The proxy header's value (`ui.proxy.header`).
    pub forwarded_user: Option<&'a str>,
    /// It carries `Forwarded`, `X-Forwarded-For` or `X-Real-IP`: a proxy passed it on from
    /// a client elsewhere, however near the proxy itself is.
    pub proxied: bool,
    /// The signed-in user of its session cookie.
    pub session: Option<&'a str>,
}

/// Decides a request that came from `peer`.
pub fn decide(auth: &Auth, peer: IpAddr, request: Request<'_>) -> Decision {
    let Request {
        forwarded_user,
        proxied,
        session,
    } = request;
    match auth {
        Auth::None if is_loopback(peer) && !proxied => Decision::Admit(None),
        Auth::None => Decision::Refuse(
            "this view admits only requests made on its own machine (ui.auth: none), not forwarded ones; behind a proxy use ui.auth: proxy, or use ui.auth: github",
        ),
        Auth::Proxy { from, .. } if !from.iter().any(|a| same_address(*a, peer)) => {
            Decision::Refuse("this view admits only requests through its configured proxy")
        }
        Auth::Proxy { .. } => match forwarded_user.map(str::trim).filter(|u| !u.is_empty()) {
            Some(user) if valid_user(user) => Decision::Admit(Some(user.to_string())),
            _ => Decision::Refuse("the proxy did not say who the user is"),
        },
        Auth::GitHub(_) => match session {
            Some(user) => Decision::Admit(Some(user.to_string())),
            None => Decision::SignIn,
        },
    }
}

/// Whether a GitHub user with these memberships may sign in: a member of one of the
/// organisations, or of one of the teams (each `@org/team`).
pub fn member(config: &GitHubAuth, orgs: &[String], teams: &[String]) -> bool {
    let lower = |v: &[String]| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
    let (orgs, teams) = (lower(orgs), lower(teams));
    config.orgs.iter().any(|o| orgs.contains(&o.to_lowercase()))
        || config
            .teams
            .iter()
            .any(|t| teams.contains(&t.to_lowercase()))
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// `::ffff:10.0.0.1` is `10.0.0.1`.
fn same_address(a: IpAddr, b: IpAddr) -> bool {
    let plain = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    plain(a) == plain(b)
}

/// A user name as proxies send it: a login or an e-mail address, nothing that could
/// break out of the page header.
fn valid_user(user: &str) -> bool {
    user.len() <= 200
        && user
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn none_admits_loopback_only() {
        let plain = Request::default();
        assert_eq!(
            decide(&Auth::None, ip("127.0.0.1"), plain),
            Decision::Admit(None)
        );
        assert_eq!(decide(&Auth::None, ip("::1"), plain), Decision::Admit(None));
        let mallory = Request {
            forwarded_user: Some("mallory"),
            ..plain
        };
        assert!(matches!(
            decide(&Auth::None, ip("10.1.2.3"), mallory),
            Decision::Refuse(_)
        ));
        // A proxy on the same machine passing on a request from elsewhere.
        let forwarded = Request {
            proxied: true,
            ..plain
        };
        assert!(matches!(
            decide(&Auth::None, ip("127.0.0.1"), forwarded),
            Decision::Refuse(_)
        ));
    }

    #[test]
    fn a_proxy_header_counts_only_from_the_proxy() {
        let auth = Auth::Proxy {
            header: "x-forwarded-user".into(),
            from: vec![ip("10.0.0.5")],
        };
        let user = |u| Request {
            forwarded_user: u,
            proxied: true,
            session: None,
        };
        assert_eq!(
            decide(&auth, ip("::ffff:10.0.0.5"), user(Some("alice"))),
            Decision::Admit(Some("alice".into()))
        );
        for (peer, u) in [
            ("10.0.0.6", Some("alice")),
            ("127.0.0.1", Some("alice")),
            ("10.0.0.5", None),
            ("10.0.0.5", Some("<script>")),
        ] {
            assert!(
                matches!(decide(&auth, ip(peer), user(u)), Decision::Refuse(_)),
                "{peer} {u:?}"
            );
        }
    }

    #[test]
    fn github_needs_a_session_and_a_membership() {
        let config = GitHubAuth {
            client_id: "id".into(),
            client_secret: crate::secret::Secret::new("s"),
            orgs: vec!["Acme".into()],
            teams: vec!["@other/platform".into()],
            web_url: String::new(),
            api_url: String::new(),
            public_url: String::new(),
        };
        let auth = Auth::GitHub(config.clone());
        assert_eq!(
            decide(&auth, ip("10.0.0.1"), Request::default()),
            Decision::SignIn
        );
        let signed_in = Request {
            session: Some("alice"),
            ..Request::default()
        };
        assert_eq!(
            decide(&auth, ip("10.0.0.1"), signed_in),
            Decision::Admit(Some("alice".into()))
        );
        assert!(member(&config, &["acme".into()], &[]));
        assert!(member(&config, &[], &["@other/platform".into()]));
        assert!(!member(&config, &["other".into()], &["@other/dba".into()]));
    }
}
