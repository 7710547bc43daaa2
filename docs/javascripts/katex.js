// Render the notebooks' LaTeX ($...$, $$...$$) with KaTeX on every page Material loads.
document$.subscribe(() => {
  if (typeof renderMathInElement === "undefined") return;
  document.querySelectorAll(".jupyter-wrapper").forEach((element) => {
    renderMathInElement(element, {
      delimiters: [
        { left: "$$", right: "$$", display: true },
        { left: "$", right: "$", display: false },
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      ignoredClasses: ["highlight", "jp-CodeMirrorEditor", "jp-OutputArea"],
      throwOnError: false,
    });
  });
});
