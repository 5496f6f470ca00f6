// The widget's CSS, injected into its shadow root: nothing here reaches the host page,
// and `:host { all: initial !important }` keeps the host page's rules (even
// `!important` ones on `*`) off the widget. `--vw-accent` is the call button color.

export const css = `
:host {
  all: initial !important;
  position: fixed !important;
  right: 20px !important;
  bottom: var(--vw-bottom, 96px) !important;
  z-index: 2147483000 !important;
  display: block !important;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif !important;
  color: #111827 !important;
}
:host([data-position="bottom-left"]) { right: auto !important; left: 20px !important; }
:host([data-mode="preview"]) {
  position: relative !important; right: auto !important; bottom: auto !important; left: auto !important;
  z-index: auto !important;
}
*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
button, textarea { font: inherit; color: inherit; }
button { cursor: pointer; }
:focus-visible { outline: 3px solid #2563eb; outline-offset: 2px; }
.sr-only {
  position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}

.launcher-row { display: flex; justify-content: flex-end; }
:host([data-position="bottom-left"]) .launcher-row { justify-content: flex-start; }
.launcher {
  display: inline-flex; align-items: center; gap: 8px;
  min-height: 52px; padding: 0 20px 0 16px; border: 0; border-radius: 999px;
  background: var(--vw-accent); color: var(--vw-on-accent);
  font-weight: 600; font-size: 15px;
  box-shadow: 0 6px 20px rgba(17, 24, 39, .22), 0 2px 6px rgba(17, 24, 39, .12);
  transition: transform .15s ease, box-shadow .15s ease;
}
.launcher:hover { transform: translateY(-1px); box-shadow: 0 10px 24px rgba(17, 24, 39, .25); }
.launcher .icon { font-size: 20px; line-height: 1; }
.launcher[aria-disabled="true"] {
  background: #e5e7eb; color: #4b5563; cursor: not-allowed; box-shadow: 0 2px 8px rgba(17, 24, 39, .12); transform: none;
}
.launcher .live-dot { display: none; }
.launcher.live .live-dot { display: inline-block; }

.panel {
  position: absolute; right: 0; bottom: 64px;
  width: min(360px, calc(100vw - 40px));
  max-height: min(620px, calc(100vh - 180px));
  display: flex; flex-direction: column;
  background: #fff; border-radius: 16px; overflow: hidden;
  box-shadow: 0 24px 48px rgba(17, 24, 39, .22), 0 4px 12px rgba(17, 24, 39, .1);
}
:host([data-position="bottom-left"]) .panel { right: auto; left: 0; }
:host([data-mode="preview"]) .panel {
  position: static; width: 100%; max-width: 420px; max-height: none; box-shadow: 0 1px 3px rgba(17, 24, 39, .12);
  border: 1px solid #e5e7eb;
}

header {
  display: flex; align-items: center; gap: 8px; min-height: 52px; padding: 8px 8px 8px 16px;
  border-bottom: 1px solid #f1f5f9;
}
header h2 { flex: 1; margin: 0; font-size: 16px; font-weight: 650; }
header h2:focus { outline: none; }
header h2:focus-visible { outline: 3px solid #2563eb; }
.link {
  flex: 1; display: inline-flex; align-items: center; gap: 6px; text-align: left; background: none; border: 0; padding: 6px 8px; margin-left: -8px;
  border-radius: 8px; color: #374151; font-weight: 600;
}
.link:hover { background: #f3f4f6; }
.close {
  width: 36px; height: 36px; border: 0; border-radius: 8px; background: none; color: #6b7280;
  display: inline-grid; place-items: center; padding: 0;
}
.close:hover { background: #f3f4f6; color: #111827; }
.badge {
  font-size: 12px; font-weight: 600; color: #92400e; background: #fef3c7; border-radius: 999px; padding: 2px 8px;
}
.timer { display: inline-flex; align-items: center; gap: 6px; font-variant-numeric: tabular-nums; font-weight: 600; color: #374151; }
.rec {
  width: 10px; height: 10px; border-radius: 50%; background: #ef4444; display: inline-block;
  animation: vw-pulse 1.6s ease-in-out infinite;
}
@keyframes vw-pulse { 50% { opacity: .35; } }

.body { padding: 20px; overflow-y: auto; display: flex; flex-direction: column; align-items: center; gap: 12px; text-align: center; }
.hero {
  width: 88px; height: 88px; border-radius: 24px; display: grid; place-items: center; font-size: 40px;
  background: var(--vw-accent-soft); color: var(--vw-accent-strong); margin-top: 4px;
}
.hero.bad { background: #fee2e2; color: #b91c1c; }
.hero.pulse { animation: vw-breathe 1.8s ease-in-out infinite; }
@keyframes vw-breathe { 50% { transform: scale(.94); opacity: .8; } }
.hero.ok { background: #dcfce7; color: #15803d; }
h3 { margin: 4px 0 0; font-size: 18px; font-weight: 650; }
h3:focus { outline: none; }
p { margin: 0; color: #4b5563; }
.note { font-size: 13px; background: #fffbeb; color: #92400e; border-radius: 10px; padding: 8px 12px; text-align: left; }
.detail { font-size: 13px; color: #6b7280; }
.actions { display: flex; flex-direction: column; gap: 10px; width: 100%; max-width: 260px; margin-top: 4px; }
.btn {
  display: inline-flex; align-items: center; justify-content: center; gap: 8px;
  min-height: 44px; padding: 0 16px; border-radius: 12px; font-weight: 600;
  border: 1px solid #d1d5db; background: #fff; color: #111827;
}
.btn:hover { background: #f9fafb; }
.btn.primary { background: var(--vw-accent); color: var(--vw-on-accent); border-color: transparent; }
.btn.primary:hover { filter: brightness(.95); }
.btn:disabled { opacity: .6; cursor: default; }

.viz { width: 100%; height: 170px; display: block; }
.status { min-height: 22px; font-weight: 600; color: #374151; }
.transcript { width: 100%; text-align: left; border: 1px solid #e5e7eb; border-radius: 12px; overflow: hidden; }
.transcript h4 {
  margin: 0; padding: 8px 12px; font-size: 12px; font-weight: 650; letter-spacing: .04em; text-transform: uppercase;
  color: #6b7280; background: #f9fafb; border-bottom: 1px solid #e5e7eb;
}
.lines { list-style: none; margin: 0; padding: 8px 12px; max-height: 150px; overflow-y: auto; display: flex; flex-direction: column; gap: 6px; }
/* In a call the transcript takes the room the rest leaves (the panel is given a height),
   never less than about five lines; only its lines scroll. */
.panel:has(.with-transcript) { height: min(640px, calc(100vh - 140px)); max-height: none; }
:host([data-mode="preview"]) .panel:has(.with-transcript) { height: auto; }
.body.in-call { flex: 1 1 auto; min-height: 0; gap: 8px; padding: 16px; }
.body.in-call > * { flex-shrink: 0; }
.body.with-transcript .viz { height: 96px; }
.body.with-transcript .transcript { flex: 1 1 auto; min-height: 150px; display: flex; flex-direction: column; }
.body.with-transcript .lines { flex: 1 1 auto; min-height: 0; max-height: none; }
:host([data-mode="preview"]) .body.with-transcript .lines { flex: none; height: 240px; }
.lines li { margin: 0; font-size: 14px; }
.lines li.partial { color: #6b7280; }
.lines .who { font-weight: 650; color: #111827; }
.lines li.agent .who { color: var(--vw-accent-strong); }
.controls { display: flex; justify-content: center; gap: 32px; margin-top: 4px; }
.round {
  display: flex; flex-direction: column; align-items: center; gap: 4px; background: none; border: 0; padding: 0;
  font-size: 13px; font-weight: 600; color: #374151;
}
.round .disc {
  width: 56px; height: 56px; border-radius: 50%; display: grid; place-items: center; font-size: 22px;
  background: #f3f4f6; border: 1px solid #e5e7eb;
}
.round:hover .disc { filter: brightness(.96); }
.round[aria-pressed="true"] .disc { background: #fef3c7; border-color: #f59e0b; }
.round.end .disc { background: #ef4444; border-color: #dc2626; color: #fff; }
.round:focus-visible { outline: none; }
.round:focus-visible .disc { outline: 3px solid #2563eb; outline-offset: 2px; }

fieldset { border: 0; margin: 8px 0 0; padding: 12px 0 0; width: 100%; border-top: 1px solid #f1f5f9; }
legend { font-weight: 650; padding: 0; margin: 0 auto 8px; }
.stars { display: flex; justify-content: center; gap: 4px; }
.stars label { cursor: pointer; display: inline-grid; color: #d1d5db; padding: 2px; border-radius: 6px; }
.stars label:hover { color: #fcd34d; }
.stars label.on { color: #f59e0b; }
.stars input { position: absolute; opacity: 0; width: 1px; height: 1px; }
.stars input:focus-visible + label { outline: 3px solid #2563eb; }
textarea {
  width: 100%; margin-top: 8px; min-height: 56px; resize: vertical; padding: 8px 10px;
  border: 1px solid #d1d5db; border-radius: 10px; font-size: 14px;
}
.rating-actions { margin-top: 8px; display: flex; justify-content: center; }
.help { font-size: 13px; text-align: left; background: #f9fafb; border-radius: 10px; padding: 10px 12px; color: #374151; }

@media (prefers-reduced-motion: reduce) {
  .rec, .hero.pulse { animation: none; }
  .launcher { transition: none; }
}
`;
