// The agreement page: Cohen's κ between the labellers with its 95% bootstrap
// interval (six-class and binary, as the table under it) and the distribution
// of the IoU of their boxes (the histogram the table under it lists).
import { barChart, intervalChart } from "./lib/chart.js";

const stats = JSON.parse(document.getElementById("agreement-data").textContent);
const interval = (ci) => (Array.isArray(ci) ? { low: ci[0], high: ci[1] } : {});

intervalChart(document.getElementById("kappa-chart"), {
  title: "Cohen's κ between the labellers, with 95% confidence intervals",
  items: [
    { key: "six_class", label: "Six-class", value: stats.kappa_six_class, ...interval(stats.kappa_six_class_ci) },
    { key: "binary", label: "Binary (fracture)", value: stats.kappa_binary, ...interval(stats.kappa_binary_ci) },
  ],
  domain: [Math.min(0, ...[stats.kappa_six_class_ci?.[0], stats.kappa_binary_ci?.[0]].filter(Number.isFinite)), 1],
  xLabel: "Cohen's κ",
});

barChart(document.getElementById("iou-chart"), {
  title: "IoU of the two labellers' boxes of each hip",
  bars: stats.iou.histogram.map((bin) => ({ label: `${bin.from.toFixed(1)}–${bin.to.toFixed(1)}`, value: bin.count })),
  xLabel: "IoU",
  yLabel: "Hips",
});
