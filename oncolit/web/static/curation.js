// Light progressive enhancement for the librarian pages; every page works without it.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // "Select all" checkbox in the queue.
    document.querySelectorAll("[data-select-all]").forEach(function (box) {
      var name = box.getAttribute("data-select-all");
      box.addEventListener("change", function () {
        box.form.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (c) {
          c.checked = box.checked;
        });
      });
    });
    // Confirm destructive buttons.
    document.querySelectorAll("[data-confirm]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        if (!window.confirm(button.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  });
})();
