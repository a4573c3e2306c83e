// Live step logs: the page already shows the log as it was when served; while the step
// runs, this follows it over server-sent events and appends what the deployer writes.
// Without JavaScript the page stays a static log (reload for more).
(function () {
  "use strict";
  var log = document.getElementById("log");
  if (!log || log.dataset.running !== "true" || !window.EventSource) {
    return;
  }
  var state = document.getElementById("log-state");
  var source = new EventSource(log.dataset.events + "?from=" + encodeURIComponent(log.dataset.offset));
  var follow = true;
  log.addEventListener("scroll", function () {
    follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  });
  source.addEventListener("append", function (event) {
    log.appendChild(document.createTextNode(event.data + "\n"));
    if (follow) {
      log.scrollTop = log.scrollHeight;
    }
  });
  source.addEventListener("end", function (event) {
    if (state) {
      state.textContent = "The step finished: " + event.data + ".";
    }
    log.dataset.running = "false";
    source.close();
  });
  if (state) {
    state.textContent = "Following the log as the step runs…";
  }
})();
