// The live board: chat over the WebSocket /ws/chat, server events from /events.
(function () {
  "use strict";
  if (showcase.page() !== "board") return;
  var $ = showcase.$, el = showcase.el;
  var log = $("chat-log"), events = $("events"), form = $("chat-form");
  var nameIn = $("chat-name"), textIn = $("chat-text"), errorOut = $("chat-error");
  var ws;

  // The name is remembered by the browser (when storage is allowed).
  function remembered(value) {
    try {
      if (value === undefined) return localStorage.getItem("showcase.name") || "";
      localStorage.setItem("showcase.name", value);
    } catch (err) { return ""; }
  }

  nameIn.value = remembered();

  function showMessage(m) {
    var li = el("li", "chat-msg");
    li.appendChild(el("span", "who", m.name));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("span", "text", m.text));
    var t = el("time", "", String(m.at || "").slice(11, 16));
    t.dateTime = m.at || "";
    li.appendChild(t);
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
  }

  function showEvent(text) {
    var li = el("li", "event", text);
    li.appendChild(el("time", "", new Date().toTimeString().slice(0, 8)));
    events.insertBefore(li, events.firstChild);
    while (events.children.length > 50) events.removeChild(events.lastChild);
  }

  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/chat");
    ws.onopen = function () { showcase.setText("ws-state", "open"); };
    ws.onclose = function () {
      showcase.setText("ws-state", "closed, reconnecting");
      setTimeout(connect, 2000);
    };
    ws.onmessage = function (e) {
      var m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      if (m.error) { errorOut.textContent = m.error; return; }
      showMessage(m);
    };
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    if (!ws || ws.readyState !== WebSocket.OPEN) { errorOut.textContent = "not connected yet"; return; }
    remembered(nameIn.value);
    errorOut.textContent = "";
    ws.send(JSON.stringify({ name: nameIn.value, text: textIn.value }));
    textIn.value = "";
    textIn.focus();
  });

  showcase.events({
    "hello": function (d) { showEvent("connected: " + d.online + " tab(s) chatting" + (d.shared ? " (via Redis)" : "")); },
    "chat.join": function (d) { showEvent("a tab joined: " + d.online + " chatting"); },
    "chat.leave": function (d) { showEvent("a tab left: " + d.online + " chatting"); },
    "chat.message": function (d) { showEvent("message from " + d.name); },
    "job.queued": function (d) { showEvent("job " + d.id + " queued (" + d.steps + " steps)"); },
    "job.progress": function (d) { showEvent("job " + d.id + ": " + d.progress + "%"); },
    "job.completed": function (d) { showEvent("job " + d.id + " completed"); },
    "job.failed": function (d) { showEvent("job " + d.id + " failed: " + d.error); }
  });
  connect();
})();
