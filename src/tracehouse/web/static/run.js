// The run page's script: j / k between nodes, the selected node marked, copy buttons, and a
// running run that grows as its spans arrive (it follows /ws/events for this run only).
(function () {
  "use strict";

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#run-nodes [data-node-row]"));
  }

  // The selected node is marked in the tree, and the other view keeps it open.
  function mark(spanId) {
    rows().forEach(function (row) {
      row.classList.toggle("selected", row.dataset.spanId === spanId);
    });
    document.querySelectorAll('nav.views a[data-view="tree"], nav.views a[data-view="timeline"]').forEach(function (a) {
      const url = new URL(a.href, location.href);
      url.searchParams.set("node", spanId);
      a.href = url.pathname + url.search;
    });
  }

  // j / k: open the next / previous node (not while typing in a field).
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    const target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) {
      return;
    }
    if (event.key !== "j" && event.key !== "k") {
      return;
    }
    const all = rows();
    if (!all.length) {
      return;
    }
    let index = all.findIndex(function (row) {
      return row.classList.contains("selected");
    });
    if (index < 0) {
      index = event.key === "j" ? 0 : all.length - 1;
    } else {
      index = Math.max(0, Math.min(all.length - 1, index + (event.key === "j" ? 1 : -1)));
    }
    const link = all[index].querySelector("a.node-link");
    if (link) {
      event.preventDefault();
      link.click();
      link.focus({ preventScroll: true });
      all[index].scrollIntoView({ block: "nearest" });
    }
  });

  // Opening a node marks it in the tree.
  document.addEventListener("click", function (event) {
    const link = event.target.closest && event.target.closest("a.node-link");
    if (link) {
      const row = link.closest("[data-node-row]");
      if (row) {
        mark(row.dataset.spanId);
      }
    }
  });

  // Copy buttons: data-copy names the element whose text goes to the clipboard.
  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) {
      return;
    }
    const source = document.querySelector(button.dataset.copy);
    if (!source) {
      return;
    }
    const text = source.textContent;
    const done = function () {
      const note = document.querySelector('[data-copied-for="' + button.dataset.copy + '"]');
      if (note) {
        note.hidden = false;
        setTimeout(function () {
          note.hidden = true;
        }, 2000);
      }
      document.body.dataset.copied = text.length;
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () {
        document.body.dataset.copyFailed = "yes";
      });
    }
  });

  // A running run: fetch the tree section and the summary again (debounced) when its spans
  // arrive, until it has ended.
  function follow(summary) {
    const body = document.body;
    const params = new URLSearchParams();
    params.set("run_id", summary.dataset.runId);
    if (body.dataset.keyed !== "yes" && body.dataset.tenant) {
      params.set("tenant", body.dataset.tenant);
    }
    const url =
      (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/events?" + params.toString();
    let pending = null;
    let delay = 1000;
    let stopped = false;
    let socket = null;

    function running() {
      const current = document.getElementById("run-summary");
      return current && current.dataset.runStatus === "running";
    }

    function refresh() {
      pending = null;
      if (!window.htmx) {
        return;
      }
      ["#run-summary", "#run-nodes"].forEach(function (selector) {
        if (document.querySelector(selector)) {
          window.htmx.ajax("GET", location.pathname + location.search, {
            target: selector,
            select: selector,
            swap: "outerHTML",
          });
        }
      });
    }

    document.addEventListener("htmx:afterSwap", function () {
      if (!running() && socket) {
        stopped = true;
        socket.close();
        body.dataset.live = "ended";
      }
    });

    function connect() {
      socket = new WebSocket(url);
      socket.addEventListener("open", function () {
        delay = 1000;
        body.dataset.live = "on";
      });
      socket.addEventListener("message", function () {
        if (pending === null) {
          pending = setTimeout(refresh, 300);
        }
      });
      socket.addEventListener("close", function () {
        if (stopped) {
          return;
        }
        body.dataset.live = "off";
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      });
    }

    connect();
  }

  document.addEventListener("DOMContentLoaded", function () {
    const summary = document.getElementById("run-summary");
    if (summary && summary.dataset.runStatus === "running" && "WebSocket" in window) {
      follow(summary);
    }
  });
})();
