//! `capstan serve`: the configuration (or `--check-config`'s account of it), the runtime,
//! signals (SIGTERM/SIGINT drain, SIGHUP reloads) and the console local mode prints to.

use std::path::PathBuf;
use std::sync::Arc;

use super::{FAILURE, color_on_stdout, init_logging, out};
use crate::core::duration;
use crate::daemon::Console;
use crate::daemon::config::{self, Config, Environment, LogFormat, Overrides, Source};
use crate::github::Auth;

#[derive(clap::Args, Debug)]
pub(super) struct ServeArgs {
    /// The configuration file (schema: `capstan schema serve`).
    #[arg(long, env = "CAPSTAN_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the configuration (and read the secret files), print a summary, exit.
    #[arg(long)]
    check_config: bool,
    /// A local checkout to watch (overrides repository.path/url).
    #[arg(long, env = "CAPSTAN_REPO")]
    repo: Option<PathBuf>,
    /// A remote to mirror (overrides repository.url/path).
    #[arg(long, env = "CAPSTAN_REPO_URL", conflicts_with = "repo")]
    repo_url: Option<String>,
    #[arg(long, env = "CAPSTAN_BRANCH")]
    branch: Option<String>,
    #[arg(long, env = "CAPSTAN_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// The state in PostgreSQL, postgres://user@host/db (overrides `state:`; password in
    /// PGPASSWORD); logs and working folders stay in the state dir.
    #[arg(long, env = "CAPSTAN_STATE")]
    state: Option<String>,
    /// What this process does with the state in PostgreSQL: `all` (default), `web`
    /// (webhooks and the web view), `worker` (jobs, schedules and polling).
    #[arg(long, env = "CAPSTAN_ROLE", value_enum)]
    role: Option<crate::daemon::config::Role>,
    /// Address for webhooks, /healthz, /readyz and /metrics, e.g. 127.0.0.1:8080.
    #[arg(long, env = "CAPSTAN_LISTEN")]
    listen: Option<String>,
    #[arg(long, env = "CAPSTAN_GITHUB_API_URL")]
    github_api_url: Option<String>,
    /// owner/name on GitHub.
    #[arg(long, env = "CAPSTAN_GITHUB_REPOSITORY")]
    github_repository: Option<String>,
    #[arg(long, env = "CAPSTAN_GITHUB_TOKEN_FILE")]
    github_token_file: Option<PathBuf>,
    #[arg(long, env = "CAPSTAN_WEBHOOK_SECRET_FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// e.g. 60s; 0s turns polling off.
    #[arg(long, env = "CAPSTAN_POLL_INTERVAL")]
    poll_interval: Option<String>,
    #[arg(long, env = "CAPSTAN_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Serve the web view on this address, e.g. 127.0.0.1:8081 (overrides ui.listen; with
    /// no `ui:` in the configuration: loopback only, no sign-in).
    #[arg(long, env = "CAPSTAN_UI")]
    ui: Option<String>,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            repo_path: self.repo.clone(),
            repo_url: self.repo_url.clone(),
            branch: self.branch.clone(),
            state_dir: self.state_dir.clone(),
            state: self.state.clone(),
            role: self.role,
            listen: self.listen.clone(),
            github_api_url: self.github_api_url.clone(),
            github_repository: self.github_repository.clone(),
            github_token_file: self.github_token_file.clone(),
            webhook_secret_file: self.webhook_secret_file.clone(),
            poll_interval: self.poll_interval.clone(),
            log_format: self.log_format,
            ui: self.ui.clone(),
        }
    }
}

/// `off`, or where the view listens and who it admits (never the OAuth secret).
fn web_view(cfg: &Config) -> String {
    use crate::web::Auth;
    let Some(ui) = &cfg.ui else {
        return "off".into();
    };
    let who = match &ui.auth {
        Auth::None => "loopback requests only".to_string(),
        Auth::Proxy { header, from } => format!(
            "the {header} header from {}",
            from.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Auth::GitHub(g) => format!(
            "GitHub sign-in (client {}) for {}",
            g.client_id,
            g.orgs
                .iter()
                .chain(&g.teams)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!("http://{} ({who})", ui.listen)
}

pub(super) fn serve(args: &ServeArgs) -> anyhow::Result<i32> {
    let overrides = args.overrides();
    let env = Environment::from_process();
    let file = args.config.clone();
    let cfg = config::load(file.as_deref(), &overrides, &env)?;
    if args.check_config {
        // What `serve` would refuse at start is no valid configuration either.
        if let Source::Local { path } = &cfg.repository.source {
            crate::source::require_root(path)?;
        }
        out(&describe(&cfg))?;
        return Ok(0);
    }
    init_logging(cfg.log_format, &cfg.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = forward_signals(signals, reload_tx).await {
                tracing::error!(error = %e, "installing signal handlers");
            }
        });
        let control = crate::daemon::Control {
            shutdown,
            reload: reload_rx,
            reloader: Box::new(move || config::load(file.as_deref(), &overrides, &env)),
            console: Console {
                color: color_on_stdout(),
                print: Arc::new(|text: &str| {
                    // A closed stdout must not stop the daemon; its work is in the state.
                    let _ = out(text);
                }),
            },
        };
        crate::daemon::run(cfg, control).await
    })?;
    Ok(0)
}

/// SIGTERM and SIGINT start the drain (a second one exits at once); SIGHUP reloads.
async fn forward_signals(
    shutdown: tokio_util::sync::CancellationToken,
    reload: tokio::sync::mpsc::UnboundedSender<()>,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = reload.send(());
                continue;
            }
        }
        if shutdown.is_cancelled() {
            tracing::warn!("second signal: exiting without draining");
            std::process::exit(FAILURE);
        }
        tracing::info!("shutting down");
        shutdown.cancel();
    }
}

/// The configuration as `--check-config` shows it: every setting, no secret.
fn describe(cfg: &Config) -> String {
    let mut s = String::from("configuration ok\n");
    if let Some(file) = &cfg.file {
        s.push_str(&format!("  file:        {}\n", file.display()));
    }
    match &cfg.repository.source {
        Source::Remote { url, ssh_key } => {
            s.push_str(&format!(
                "  repository:  {} (mirrored)\n",
                crate::source::mirror::redact_url(url)
            ));
            if let Some(key) = ssh_key {
                s.push_str(&format!("  ssh key:     {}\n", key.display()));
            }
        }
        Source::Local { path } => s.push_str(&format!(
            "  repository:  {} (local, watched)\n",
            path.display()
        )),
    }
    if !cfg.repository.root.is_empty() {
        s.push_str(&format!("  root:        {}\n", cfg.repository.root));
    }
    s.push_str(&format!("  branch:      {}\n", cfg.repository.branch));
    s.push_str(&format!("  state dir:   {}\n", cfg.state_dir.display()));
    s.push_str(&format!("  state:       {}\n", cfg.state));
    if cfg.state.is_postgres() {
        s.push_str(&format!(
            "  role:        {} (jobs leased for {:?})\n",
            cfg.role.name(),
            cfg.lease
        ));
    }
    s.push_str(&format!(
        "  listen:      {} (/healthz, /readyz, /metrics{})\n",
        cfg.listen,
        if cfg.github.is_some() {
            ", /webhook"
        } else {
            ""
        }
    ));
    s.push_str(&format!("  web view:    {}\n", web_view(cfg)));
    match &cfg.github {
        Some(gh) => {
            s.push_str(&format!(
                "  github:      {}/{} at {}\n",
                gh.api.owner, gh.api.name, gh.api.api_url
            ));
            s.push_str(&format!(
                "  auth:        {}\n",
                match &gh.api.auth {
                    Auth::Token(_) => "token (read from its file)".to_string(),
                    Auth::App {
                        id,
                        installation_id,
                        ..
                    } => format!(
                        "GitHub App {id}, installation {installation_id} (key read from its file)"
                    ),
                }
            ));
            s.push_str(&format!(
                "  webhooks:    {}\n",
                if gh.webhook_secret.is_some() {
                    "on (secret read from its file)"
                } else {
                    "off (no webhook secret)"
                }
            ));
            s.push_str(&format!(
                "  polling:     {}\n",
                gh.poll_interval.map_or("off".to_string(), duration::format)
            ));
        }
        None => s.push_str(
            "  github:      not configured: the working tree's plan is printed on each edit\n",
        ),
    }
    if let Some(gh) = &cfg.github {
        let r = &gh.api.retry;
        s.push_str(&format!(
            "  retry:       {} attempts, backoff {}, rate limits waited out up to {}\n",
            r.attempts,
            duration::format(r.backoff),
            duration::format(r.max_wait)
        ));
    }
    s.push_str(&format!("  workers:     {}\n", cfg.workers));
    s.push_str(&format!(
        "  plan cache:  {} MiB of checked revisions\n",
        cfg.plan_cache_bytes >> 20
    ));
    let d = &cfg.deploy;
    s.push_str(&format!(
        "  deploy:      {}, {} instances of a wave at once, each step at most {}, state locks waited for up to {}\n",
        if d.enabled { "on" } else { "off (plans only)" },
        d.parallel,
        duration::format(d.timeouts.step),
        duration::format(d.timeouts.state_lock)
    ));
    s.push_str(&format!(
        "  previews:    {}\n",
        if cfg.previews.enabled {
            format!(
                "on, swept every {}",
                duration::format(cfg.previews.sweep_interval)
            )
        } else {
            "off".to_string()
        }
    ));
    let pp = &cfg.provisioner_plans;
    s.push_str(&format!(
        "  provisioner plans: {}\n",
        if pp.enabled {
            let names: Vec<&str> = pp.env.iter().map(|(n, _)| n.as_str()).collect();
            format!(
                "on, {} at once, each at most {}, environment: {}",
                pp.parallel,
                duration::format(pp.timeout),
                if names.is_empty() {
                    "PATH only (the daemon's own environment is never passed)".to_string()
                } else {
                    format!("{} and PATH (values not shown)", names.join(", "))
                }
            )
        } else {
            "off".to_string()
        }
    ));
    for sch in &cfg.schedules {
        s.push_str(&format!(
            "  schedule:    {} `{}` -> {}\n",
            sch.name,
            sch.cron.pattern,
            sch.job.name()
        ));
    }
    if let Source::Local { .. } = cfg.repository.source {
        s.push_str(&format!(
            "  debounce:    {}\n",
            duration::format(cfg.repository.watch_debounce)
        ));
    }
    s.push_str(&format!(
        "  shutdown:    {}\n",
        duration::format(cfg.shutdown_timeout)
    ));
    s.push_str(&format!(
        "  log:         {}, level {}\n",
        match cfg.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        },
        cfg.log_level
    ));
    s
}
