//! `capstan.yaml`: repository-wide owners and deploy windows, each window's cron and
//! duration parsed here, once.

use std::sync::Arc;

use super::{audience, loc, string, strings};
use crate::core::diag::{Code, Diagnostics};
use crate::core::model::*;
use crate::core::yaml::Node;

pub(super) fn config(root: &Node, file: &Arc<str>, diags: &mut Diagnostics) -> Config {
    Config {
        owners: strings(root.get("owners")),
        deploy_windows: root
            .get("deploy_windows")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .filter_map(|w| window(w, file, diags))
            .collect(),
        remediate: root
            .get("drift")
            .and_then(|d| d.get("remediate"))
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .map(|r| audience(r.get("environments")))
            .collect(),
    }
}

/// A deploy window, its cron and duration parsed here, once; `None` (reported) when either
/// does not parse. The schema has already reported missing keys.
fn window(w: &Node, file: &Arc<str>, diags: &mut Diagnostics) -> Option<DeployWindow> {
    let cron_node = w.get("cron")?;
    let text = cron_node.as_str()?;
    let cron = match crate::core::windows::parse_cron(text) {
        Ok(cron) => Some(cron),
        Err(e) => {
            diags.at(
                Code::SchemaInvalid,
                file,
                cron_node.pos,
                format!("deploy_windows: `{text}` is not a cron expression: {e}"),
            );
            None
        }
    };
    let duration_node = w.get("duration")?;
    let text = duration_node.as_str()?;
    // The schema reports a malformed duration, naming what was typed; only one written
    // right but too long to hold (for the parser or for a calendar) is left to say here.
    let (length, too_long) = match crate::core::duration::parse(text) {
        Ok(d) => match chrono::TimeDelta::from_std(d) {
            Ok(t) => (Some(t), false),
            Err(_) => (None, true),
        },
        Err(e) => (None, e.is_too_long()),
    };
    if too_long {
        diags.at(
            Code::SchemaInvalid,
            file,
            duration_node.pos,
            format!("deploy_windows: `{text}` is too long for a duration"),
        );
    }
    Some(DeployWindow {
        name: string(w.get("name")),
        allow: w.get("action").and_then(Node::as_str) != Some("deny"),
        cron: cron?,
        length: length?,
        environments: audience(w.get("environments")),
        at: loc(file, w),
    })
}
