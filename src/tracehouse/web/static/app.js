// The page's own script: times in the viewer's time zone, the tenant picker, live updates.
// It is a file (the Content-Security-Policy runs no inline script) and asks only this server.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  // Events after which the runs list is worth fetching again.
  const RUN_EVENTS = new Set([
    "execution_started",
    "execution_completed",
    "execution_failed",
    "execution_incomplete",
  ]);

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  // "2026-05-01 14:03:07" in the viewer's local time, from an ISO UTC time.
  function localTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) {
      return null;
    }
    return (
      d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds())
    );
  }

  // <time data-utc="ISO" title="... UTC">: the text turns local, the title stays UTC
  // (data-precision="minute": without the seconds).
  function showLocalTimes(root) {
    root.querySelectorAll("time[data-utc]").forEach(function (el) {
      const text = localTime(el.dataset.utc);
      if (text !== null) {
        el.textContent = el.dataset.precision === "minute" ? text.slice(0, 16) : text;
      }
    });
  }

  function autosubmit(root) {
    root.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
      select.addEventListener("change", function () {
        select.form.requestSubmit();
      });
    });
  }

  // Follow the live stream and fetch the section again (debounced) when runs start or end, or
  // when a node of a run shown as running ends.
  // The WebSocket authenticates like the page: by its sign-in cookie, or names the tenant.
  function follow(section) {
    const body = document.body;
    const params = new URLSearchParams();
    if (body.dataset.keyed !== "yes" && body.dataset.tenant) {
      params.set("tenant", body.dataset.tenant);
    }
    const query = params.toString();
    const url =
      (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/events" + (query ? "?" + query : "");
    const selector = "#" + section.id;
    let delay = 1000;
    let pending = null;

    function runningShown() {
      const current = document.querySelector(selector);
      return current !== null && current.dataset.running === "yes";
    }

    // The same address, so the filters in its query are kept.
    function refresh() {
      pending = null;
      if (window.htmx) {
        window.htmx.ajax("GET", location.pathname + location.search, {
          target: selector,
          select: selector,
          swap: "outerHTML",
        });
      }
    }

    function connect() {
      const socket = new WebSocket(url);
      socket.addEventListener("open", function () {
        delay = 1000;
        body.dataset.live = "on";
      });
      socket.addEventListener("message", function (event) {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        if (pending !== null) {
          return;
        }
        if (RUN_EVENTS.has(message.type)) {
          pending = setTimeout(refresh, 300);
        } else if (message.type === "node_executed" && runningShown()) {
          // A run on the page is running: its nodes, tokens and cost change (at most every 2 s).
          pending = setTimeout(refresh, 2000);
        }
      });
      socket.addEventListener("close", function () {
        body.dataset.live = "off";
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      });
    }

    connect();
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  // "/": the search of the runs (from any other page: the runs page, with its search focused).
  function focusSearch() {
    const search = document.getElementById("search");
    if (search) {
      search.focus();
      search.select();
    }
    return search !== null;
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) {
      return;
    }
    event.preventDefault();
    if (!focusSearch()) {
      location.assign("/#search");
    }
  });

  // A fetch that ended on the sign-in page (the key is no longer valid) goes there whole.
  document.addEventListener("htmx:beforeSwap", function (event) {
    const xhr = event.detail.xhr;
    if (xhr && xhr.responseURL && new URL(xhr.responseURL).pathname === "/signin") {
      event.preventDefault();
      location.assign(xhr.responseURL);
    }
  });

  // New content from htmx gets local times too.
  document.addEventListener("htmx:load", function (event) {
    showLocalTimes(event.target);
  });

  document.addEventListener("DOMContentLoaded", function () {
    showLocalTimes(document);
    autosubmit(document);
    if (location.hash === "#search") {
      focusSearch();
    }
    const live = document.querySelector("[data-live]");
    if (live && live.id && "WebSocket" in window) {
      follow(live);
    }
  });
})();
