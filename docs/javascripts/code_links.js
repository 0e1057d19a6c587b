// Pseudocode lines <-> code lines (docs/sitegen/code_listing.py). When the address names a
// pseudocode line (#d_transformer-L6), every code line citing it is highlighted; when it names
// a code line (#code-...-163), that line and the pseudocode lines it cites are, and the tab
// holding it is opened. No other behaviour: without JavaScript the links still work.
(function () {
  "use strict";
  function reveal(el) {
    const block = el.closest(".tabbed-block");
    if (!block) return;
    const set = block.closest(".tabbed-set");
    const index = Array.prototype.indexOf.call(block.parentElement.children, block);
    const input = set.querySelectorAll(":scope > input")[index];
    if (input && !input.checked) input.click();
  }
  function highlight() {
    document.querySelectorAll(".ft-hl").forEach((e) => e.classList.remove("ft-hl"));
    const id = decodeURIComponent(location.hash.slice(1));
    const target = id && document.getElementById(id);
    if (!target) return;
    if (target.matches(".ft-alg-lines > li")) {
      document.querySelectorAll(".ft-cl[data-cites]").forEach((line) => {
        if (line.dataset.cites.split(" ").includes(id)) line.classList.add("ft-hl");
      });
    } else if (target.matches(".ft-cl")) {
      target.classList.add("ft-hl");
      (target.dataset.cites || "").split(" ").forEach((line) => {
        const li = line && document.getElementById(line);
        if (li) li.classList.add("ft-hl");
      });
      reveal(target);
      target.scrollIntoView({ block: "center" });
    }
  }
  window.addEventListener("hashchange", highlight);
  highlight();
})();
