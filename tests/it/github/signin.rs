//! GitHub sign-in to the web view (`ui.auth: github`), against the fake GitHub's OAuth
//! endpoints and REST API: a member of the configured organisation is admitted, anyone
//! else refused, and a session cookie cannot be forged.

use super::fake::FakeGitHub;
use crate::web::{Served, get};

/// Follows the sign-in as a browser would, for whoever the fake has signing in: the
/// view's redirect, GitHub's authorize page, the callback with the state cookie.
fn sign_in(view: &str, fake: &FakeGitHub) -> crate::web::Answer {
    let start = get(view, "/", &[], None);
    assert_eq!(start.status, 303, "{}", start.head);
    assert_eq!(start.header("location"), Some("/auth/login"));
    let login = get(view, "/auth/login", &[], None);
    let state = login.cookie("capstan_oauth_state").expect("a state cookie");
    let authorize = login.header("location").expect("to GitHub").to_string();
    let rest = authorize
        .strip_prefix(&fake.url)
        .unwrap_or_else(|| panic!("{authorize} is not the fake's"));
    let fake_addr = fake.url.trim_start_matches("http://");
    let back = get(fake_addr, rest, &[], None);
    assert_eq!(back.status, 302, "{}", back.body);
    let callback = back
        .header("location")
        .expect("back to the view")
        .to_string();
    let path = callback
        .strip_prefix(&format!("http://{view}"))
        .unwrap_or_else(|| panic!("{callback} is not the view's"))
        .to_string();
    let cookie = format!("capstan_oauth_state={state}");
    get(view, &path, &[("Cookie", &cookie)], None)
}

#[test]
fn a_member_signs_in_and_anyone_else_is_refused() {
    let fake = FakeGitHub::start("acme", "infra", "bot-token");
    fake.oauth_app("capstan-view", "oauth-client-secret-value");
    fake.org_member("acme", "alice");
    fake.team_member("contractors", "platform", "carol");
    // A port known before the view starts, for GitHub's redirect back.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let secret = tmp.path().join("oauth-secret");
    std::fs::write(&secret, "oauth-client-secret-value\n").unwrap();
    let config = format!(
        "ui:\n  listen: 127.0.0.1:{port}\n  auth: github\n  github:\n    client_id: capstan-view\n    client_secret_file: {}\n    public_url: http://127.0.0.1:{port}\n    orgs: [acme]\n    teams: [\"@contractors/platform\"]\n    web_url: {}\n    api_url: {}\n",
        secret.display(),
        fake.url,
        fake.url
    );
    let s = Served::start(Some(&config));

    fake.signs_in("alice");
    let signed = sign_in(&s.addr, &fake);
    assert_eq!(signed.status, 303, "{}", signed.body);
    let session = signed.cookie("capstan_session").expect("a session");
    let cookie = format!("capstan_session={session}");
    let fleet = get(&s.addr, "/", &[("Cookie", &cookie)], None);
    assert_eq!(fleet.status, 200);
    assert!(fleet.body.contains("Signed in as <strong>alice</strong>"));
    assert!(fleet.body.contains("14 instances"));

    // A member of a configured team, not of the organisation.
    fake.signs_in("carol");
    assert_eq!(sign_in(&s.addr, &fake).status, 303);

    // Someone GitHub knows, but no member.
    fake.signs_in("bob");
    let refused = sign_in(&s.addr, &fake);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("bob is not a member"),
        "{}",
        refused.body
    );
    assert!(refused.cookie("capstan_session").is_none());

    // A session for someone else, signed by nobody; a callback not started here.
    let forged = session.replacen("alice", "bob", 1);
    let forged = get(
        &s.addr,
        "/",
        &[("Cookie", &format!("capstan_session={forged}"))],
        None,
    );
    assert_eq!(forged.status, 303);
    let stray = get(&s.addr, "/auth/callback?code=code1&state=abc", &[], None);
    assert_eq!(stray.status, 403);

    // The client secret and the user tokens stay out of every answer and the log.
    let log = s.daemon.stderr.lock().unwrap().clone();
    assert!(log.contains("signed in to the web view"), "{log}");
    for text in [&fleet.body, &refused.body, &signed.head, &log] {
        assert!(!text.contains("oauth-client-secret-value"));
        assert!(!text.contains("gho_user"));
    }
    assert_eq!(fake.violations(), Vec::<String>::new());
}
