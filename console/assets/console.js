// Groundgate console: small progressive enhancements. Every page works
// without this script.
(function () {
  "use strict";
  // Copy buttons: <button data-copy="element-id">.
  document.addEventListener("click", function (e) {
    var b = e.target.closest("button[data-copy]");
    if (!b) return;
    var el = document.getElementById(b.getAttribute("data-copy"));
    if (!el || !navigator.clipboard) return;
    navigator.clipboard.writeText(el.textContent).then(function () {
      var old = b.textContent;
      b.textContent = "Copied";
      setTimeout(function () { b.textContent = old; }, 1500);
    });
  });
  // Toggle buttons say they are busy while the form posts.
  document.addEventListener("submit", function (e) {
    var b = e.target.querySelector("button.toggle");
    if (b) { b.setAttribute("aria-busy", "true"); }
  });
  // After a toggle, focus returns to the feature's row (keyboard users
  // keep their place).
  if (location.hash.indexOf("#f-") === 0) {
    var row = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    var btn = row && row.querySelector("button.toggle");
    if (btn) btn.focus();
  }
})();
