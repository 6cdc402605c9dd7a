// Shared by the pages' scripts: element helpers and the server event feed.
// Text goes in with textContent only, never as HTML.
var showcase = (function () {
  "use strict";

  function $(id) { return document.getElementById(id); }

  function page() {
    var main = $("page");
    return main ? main.getAttribute("data-page") : "";
  }

  // A new element with a class and text.
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function setText(id, text) {
    var e = $(id);
    if (e) e.textContent = text;
  }

  // Opens /events and calls handlers[name](data, event) for each event
  // (data parsed from JSON); #sse-state shows the connection.
  function events(handlers) {
    var es = new EventSource("/events");
    es.onopen = function () { setText("sse-state", "open"); };
    es.onerror = function () { setText("sse-state", "reconnecting"); };
    Object.keys(handlers).forEach(function (name) {
      es.addEventListener(name, function (e) {
        var data;
        try { data = JSON.parse(e.data); } catch (err) { return; }
        handlers[name](data, e);
      });
    });
    return es;
  }

  return { $: $, page: page, el: el, setText: setText, events: events };
})();
