// gateway-agent web console: live refresh of the overview checks and the live-readings list.
// No framework, no network beyond this console (gateways are often offline).
"use strict";
(function () {
  var checks = document.getElementById("checks");
  if (checks) {
    setInterval(function () {
      fetch("/partial/checks", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("checks");
          if (fresh) {
            checks.replaceWith(fresh);
            checks = fresh;
            var u = document.getElementById("updated");
            if (u) u.textContent = new Date().toLocaleTimeString();
          }
        })
        .catch(function () {
          var u = document.getElementById("updated");
          if (u) u.textContent = "not reachable, retrying";
        });
    }, 5000);
  }
  var list = document.getElementById("live");
  if (list && window.EventSource) {
    var state = document.getElementById("live-state");
    var es = new EventSource("/live/events");
    es.onopen = function () { state.textContent = "connected: waiting for readings"; };
    es.onerror = function () { state.textContent = "disconnected, retrying"; };
    es.addEventListener("reading", function (ev) {
      var r = JSON.parse(ev.data);
      var li = document.createElement("li");
      li.className = "reading";
      var t = new Date(r.time * 1000).toLocaleTimeString();
      var a = document.createElement("a");
      a.href = "/devices/" + encodeURIComponent(r.dev_eui);
      a.textContent = r.dev_eui;
      li.appendChild(document.createTextNode(t + " "));
      li.appendChild(a);
      var parts = [];
      var m = r.measurements || {};
      Object.keys(m).forEach(function (k) { parts.push(k + " " + m[k]); });
      if (r.rssi !== null && r.rssi !== undefined) parts.push("RSSI " + r.rssi);
      li.appendChild(document.createTextNode(" " + parts.join(", ")));
      list.insertBefore(li, list.firstChild);
      while (list.children.length > 50) list.removeChild(list.lastChild);
      state.textContent = "connected";
    });
  }
})();
