// The one poll of the live pages (import, training run, operations, worklist,
// reader study): call ``tick`` every ``intervalMs``, one call at a time.
//
// ``tick`` is async; returning ``false`` ends the poll (the job or run has
// ended). A thrown error is passed to ``onError`` (a network hiccup is not the
// end of anything) and the poll goes on. With ``pauseWhenHidden`` nothing is
// asked while the tab is hidden, and a tick runs at once when it shows again.
//
//   const stop = poll(async () => { render(await getJSON(url)); }, { intervalMs: 1500 });
//   stop();  // no more ticks
export function poll(
  tick,
  { intervalMs = 1500, immediate = true, pauseWhenHidden = false, onError = null } = {},
) {
  let timer = null;
  let running = false;
  let stopped = false;

  async function run() {
    clearTimeout(timer);
    timer = null;
    if (stopped || running) return;
    if (pauseWhenHidden && document.hidden) return; // visibilitychange starts it again
    running = true;
    let again = true;
    try {
      again = (await tick()) !== false;
    } catch (error) {
      onError?.(error);
    } finally {
      running = false;
    }
    if (!again) stop();
    else schedule();
  }

  function schedule() {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(run, intervalMs);
  }

  function onVisibility() {
    if (!document.hidden && !running) run();
  }

  function stop() {
    stopped = true;
    clearTimeout(timer);
    if (pauseWhenHidden) document.removeEventListener("visibilitychange", onVisibility);
  }

  if (pauseWhenHidden) document.addEventListener("visibilitychange", onVisibility);
  if (immediate) run();
  else schedule();
  return stop;
}
