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
  // After a toggle, focus returns to the cell's button: keyboard users
  // keep their place in the matrix.
  if (location.hash.indexOf("#t-") === 0) {
    var id = "toggle-" + decodeURIComponent(location.hash.slice(3));
    var btn = document.querySelector('button.toggle[data-testid="' + CSS.escape(id) + '"]');
    if (btn) { btn.focus(); btn.scrollIntoView({block: "center"}); }
  }
})();
