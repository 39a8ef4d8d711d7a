// Applies the saved light/dark choice before the page paints (no flash); the default follows the system.
(function () {
  try {
    var theme = localStorage.getItem("theme");
    if (theme === "light" || theme === "dark") document.documentElement.setAttribute("data-theme", theme);
  } catch (e) { /* storage may be disabled: keep the system's choice */ }
})();
