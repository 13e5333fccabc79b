// Live page: new messages arrive as server-rendered (already escaped) table rows.
(function () {
  var body = document.getElementById("live-rows");
  if (!body || !window.EventSource) return;
  var source = new EventSource(
    "/live/events?after=" + encodeURIComponent(body.dataset.after || "")
  );
  source.addEventListener("message", function (e) {
    body.insertAdjacentHTML("afterbegin", e.data);
    while (body.rows.length > 100) body.deleteRow(-1);
  });
})();
