//! systemd's notify protocol: READY once serving, STOPPING when draining, and watchdog
//! pings from the runtime itself (so a wedged runtime stops pinging and gets restarted).
//! Outside systemd (`$NOTIFY_SOCKET` unset) these do nothing.

use tokio_util::sync::CancellationToken;

pub(super) fn ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "telling systemd we are ready");
    }
}

pub(super) fn stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

pub(super) async fn watchdog(stop: CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        }
    }
}
