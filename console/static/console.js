// The console's own behaviour; no inline scripts (the Content-Security-Policy forbids them).
"use strict";

// A button with data-confirm asks before its form is sent.
document.addEventListener("submit", function (event) {
  var button = event.submitter;
  var question = button && button.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);

// Live lists keep their newest lines in view and their length bounded.
var KEEP = { logs: 2000, events: 500 };
document.addEventListener("htmx:sseMessage", function (event) {
  var list = event.target;
  var keep = KEEP[list.id];
  if (!keep) return;
  while (list.children.length > keep) list.removeChild(list.firstElementChild);
  list.scrollTop = list.scrollHeight;
});
