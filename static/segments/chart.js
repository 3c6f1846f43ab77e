// Size-over-time chart of a segment: data from json_script, rendered by the vendored Plotly.
(function () {
  var el = document.getElementById("seg-size-chart");
  var data = document.getElementById("seg-size-data");
  if (!el || !data || !window.Plotly) return;
  var figure = JSON.parse(data.textContent);
  if (!figure.data[0].x.length) {
    el.textContent = "No refresh yet: refresh the membership to start the history.";
    return;
  }
  Plotly.newPlot(el, figure.data, figure.layout, { displayModeBar: false, responsive: true });
})();
