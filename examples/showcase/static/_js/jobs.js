// Jobs: start one through the API, watch its progress over /events.
(function () {
  "use strict";
  if (showcase.page() !== "jobs") return;
  var $ = showcase.$, el = showcase.el;
  var list = $("jobs"), form = $("job-form"), stepsIn = $("job-steps"), errorOut = $("job-error");

  // The job's <li>, made on first sight (a job started in another tab too).
  function item(d) {
    var li = list.querySelector('li.job[data-job-id="' + CSS.escape(String(d.id)) + '"]');
    if (li) return li;
    li = el("li", "job");
    li.setAttribute("data-job-id", d.id);
    li.appendChild(el("span", "job-name", "job " + d.id + " · " + d.steps + " steps"));
    var bar = el("progress");
    bar.max = 100;
    li.appendChild(bar);
    li.appendChild(el("span", "job-progress"));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("span", "job-state"));
    list.insertBefore(li, list.firstChild);
    return li;
  }

  function update(d) {
    var li = item(d);
    li.setAttribute("data-state", d.state);
    li.querySelector("progress").value = d.progress;
    li.querySelector(".job-progress").textContent = d.progress + "%";
    li.querySelector(".job-state").textContent = d.state;
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    errorOut.textContent = "";
    fetch("/api/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ steps: Number(stepsIn.value) })
    }).then(function (resp) {
      return resp.json().then(function (body) {
        if (!resp.ok) { errorOut.textContent = body.detail || body.title || "failed"; return; }
        var li = list.querySelector('li.job[data-job-id="' + CSS.escape(String(body.id)) + '"]');
        if (!li) update({ id: body.id, steps: body.steps, progress: 0, state: "waiting" });
      });
    }).catch(function () { errorOut.textContent = "the server did not answer"; });
  });

  showcase.events({
    "job.queued": update,
    "job.progress": update,
    "job.completed": update,
    "job.failed": update
  });
})();
