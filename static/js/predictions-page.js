// The predictions page: show or hide the heatmaps over the radiograph.
const toggle = document.getElementById("show-heatmaps");
const figure = document.getElementById("prediction-figure");

function apply() {
  for (const img of figure.querySelectorAll(".prediction-heatmap")) img.hidden = !toggle.checked;
}
toggle.addEventListener("change", apply);
apply();
