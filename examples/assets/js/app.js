// The application code: the second half of the bundle.
document.addEventListener("DOMContentLoaded", function () {
  var el = document.getElementById("out")
  if (el) el.textContent = greet("assets")
})
