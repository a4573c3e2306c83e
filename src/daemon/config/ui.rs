//! `ui:`: the web view's listener and who it admits (docs/web.md).

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use super::{Credential, Environment, GitHubConfig, Overrides, Problems, UiConfig};

#[derive(Deserialize)]
pub(super) struct FileUi {
    listen: Option<String>,
    auth: Option<String>,
    proxy: Option<FileUiProxy>,
    github: Option<FileUiGitHub>,
}

#[derive(Deserialize)]
struct FileUiProxy {
    header: Option<String>,
    #[serde(default)]
    from: Vec<String>,
}

#[derive(Deserialize)]
struct FileUiGitHub {
    client_id: String,
    client_secret_file: String,
    public_url: String,
    #[serde(default)]
    orgs: Vec<String>,
    #[serde(default)]
    teams: Vec<String>,
    web_url: Option<String>,
    api_url: Option<String>,
}

/// The web view's settings: from `ui:`, or `--ui ADDR` alone (loopback, `auth: none`).
pub(super) fn ui(
    file: Option<FileUi>,
    o: &Overrides,
    github: Option<&GitHubConfig>,
    env: &Environment,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<UiConfig> {
    use crate::web::{Auth, GitHubAuth};
    let file = match (file, &o.ui) {
        (None, None) => return None,
        (Some(f), _) => f,
        (None, Some(_)) => FileUi {
            listen: None,
            auth: None,
            proxy: None,
            github: None,
        },
    };
    let text =
        o.ui.clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8081".into());
    let listen = problems
        .take(text.parse::<SocketAddr>().map_err(|_| {
            format!("ui.listen: `{text}` is not an address such as 127.0.0.1:8081")
        }))?;
    let auth = match file.auth.as_deref().unwrap_or("none") {
        "none" if !listen.ip().is_loopback() => {
            problems.0.push(format!(
                "ui.listen: `{listen}` is not loopback; with ui.auth: none the view admits loopback requests only, so it must listen there (or set ui.auth: proxy or github)"
            ));
            return None;
        }
        "none" => Auth::None,
        "proxy" => {
            let proxy = file.proxy.unwrap_or(FileUiProxy {
                header: None,
                from: Vec::new(),
            });
            let from: Vec<std::net::IpAddr> = proxy
                .from
                .iter()
                .filter_map(|a| {
                    problems.take(
                        a.parse()
                            .map_err(|_| format!("ui.proxy.from: `{a}` is not an IP address")),
                    )
                })
                .collect();
            if from.is_empty() {
                problems.0.push(
                    "ui.proxy.from: ui.auth: proxy needs the proxy's addresses, so a header from anywhere else is not believed".into(),
                );
                return None;
            }
            Auth::Proxy {
                header: proxy
                    .header
                    .unwrap_or_else(|| "X-Forwarded-User".into())
                    .to_lowercase(),
                from,
            }
        }
        "github" => {
            let Some(g) = file.github else {
                problems
                    .0
                    .push("ui.github: ui.auth: github needs client_id, client_secret_file, public_url and orgs or teams".into());
                return None;
            };
            if g.orgs.is_empty() && g.teams.is_empty() {
                problems
                    .0
                    .push("ui.github: name the orgs or teams whose members may sign in".into());
                return None;
            }
            let secret = problems.take(
                Credential::new(&g.client_secret_file, env, base_dir)
                    .read("GitHub OAuth client secret"),
            )?;
            let api_url = g
                .api_url
                .or_else(|| github.map(|gh| gh.api.api_url.clone()))
                .unwrap_or_else(|| "https://api.github.com".into());
            let web_url = g.web_url.unwrap_or_else(|| {
                crate::web::github_web_url(&api_url, "")
                    .trim_end_matches('/')
                    .to_string()
            });
            Auth::GitHub(GitHubAuth {
                client_id: g.client_id,
                client_secret: secret,
                orgs: g.orgs,
                teams: g.teams,
                web_url,
                api_url: api_url.trim_end_matches('/').to_string(),
                public_url: g.public_url.trim_end_matches('/').to_string(),
            })
        }
        other => {
            problems
                .0
                .push(format!("ui.auth: `{other}` is none of none, proxy, github"));
            return None;
        }
    };
    Some(UiConfig { listen, auth })
}
