// The console's building blocks: labelled form controls with their inline error line,
// reading a form, showing the API's field errors, dialogs, copy buttons, badges and the
// status line. Text always goes in as text (the widget's `h`), never as HTML.

import { h } from '/widget/v1/dom.js';

export { h };

let seq = 0;
const nextId = (name) => `f${++seq}-${name.replace(/[^\w-]/g, '')}`;

/**
 * A labelled control, its hint and its error line. `kind`: text, password, email, url,
 * textarea, select, checkbox, number, range (a slider with a number box, both labelled),
 * color (a colour picker with a hex box), radios. `type` says how its value reads back:
 * `text` (default), `number`, `bool`, `lines` (a textarea of one item per line).
 * The row carries `data-field` = `name`, so an API error's `field` finds it.
 */
export function field({ label, name, kind = 'text', value, hint, options = [], attrs = {}, type }) {
  const id = nextId(name);
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [hint ? hintId : null, errorId].filter(Boolean).join(' ');
  const valueType = type ?? (kind === 'checkbox' ? 'bool' : kind === 'number' || kind === 'range' ? 'number' : 'text');
  const { unit, rows, ...controlAttrs } = attrs;
  const common = { id, name, 'data-type': valueType, 'aria-describedby': describedBy, ...controlAttrs };
  const hintEl = hint ? h('p', { class: 'hint', id: hintId, text: hint }) : null;
  const errorEl = h('p', { class: 'field-error', id: errorId });
  let control;
  let extra = null;
  if (kind === 'checkbox') {
    control = h('input', { ...common, type: 'checkbox' });
    control.checked = Boolean(value);
    const row = h('div', { class: 'field check', 'data-field': name }, control, h('div', {}, h('label', { for: id, text: label }), hintEl, errorEl));
    return { row, control, error: errorEl };
  }
  if (kind === 'radios') {
    const group = h('fieldset', { class: 'field radios', 'data-field': name, 'aria-describedby': describedBy }, h('legend', { text: label }));
    for (const [optionValue, optionLabel] of options) {
      const optionId = nextId(`${name}-${optionValue}`);
      const radio = h('input', { type: 'radio', id: optionId, name, value: optionValue, 'data-type': valueType, ...controlAttrs });
      radio.checked = optionValue === value;
      group.append(h('span', { class: 'radio' }, radio, h('label', { for: optionId, text: optionLabel })));
    }
    group.append(hintEl ?? '', errorEl);
    return { row: group, control: group, error: errorEl };
  }
  if (kind === 'textarea') {
    control = h('textarea', { ...common, rows: rows ?? 3 });
    control.value = Array.isArray(value) ? value.join('\n') : (value ?? '');
  } else if (kind === 'select') {
    control = h('select', common, ...options.map(([v, l]) => h('option', { value: v, text: l })));
    control.value = value ?? '';
  } else if (kind === 'range') {
    // The number box is the labelled control the form reads; the slider mirrors it.
    control = h('input', { ...common, type: 'number', inputmode: 'decimal', class: 'range-number' });
    control.value = value ?? '';
    const slider = h('input', {
      type: 'range',
      min: attrs.min,
      max: attrs.max,
      step: attrs.step,
      'aria-label': `${label} (slider)`,
      'aria-describedby': describedBy,
      tabindex: 0,
    });
    slider.value = value ?? '';
    slider.addEventListener('input', () => {
      control.value = slider.value;
      control.dispatchEvent(new Event('input', { bubbles: true }));
    });
    control.addEventListener('input', () => {
      if (control.value !== '') slider.value = control.value;
    });
    extra = h('div', { class: 'range' }, slider, control, unit ? h('span', { class: 'unit', text: unit }) : null);
  } else if (kind === 'color') {
    control = h('input', { ...common, type: 'text', spellcheck: 'false', class: 'color-text', maxlength: 7 });
    control.value = value ?? '';
    const picker = h('input', { type: 'color', 'aria-label': `${label} (picker)` });
    picker.value = /^#[0-9a-f]{6}$/i.test(value ?? '') ? value : '#000000';
    picker.addEventListener('input', () => {
      control.value = picker.value;
      control.dispatchEvent(new Event('input', { bubbles: true }));
    });
    control.addEventListener('input', () => {
      if (/^#[0-9a-f]{6}$/i.test(control.value)) picker.value = control.value.toLowerCase();
    });
    extra = h('div', { class: 'color' }, picker, control);
  } else {
    control = h('input', { ...common, type: kind });
    control.value = value ?? '';
  }
  const row = h('div', { class: 'field', 'data-field': name }, h('label', { for: id, text: label }), extra ?? control, hintEl, errorEl);
  return { row, control, error: errorEl };
}

/** The values of a form's named controls, read by their `data-type`. */
export function readForm(container) {
  const values = {};
  for (const control of container.querySelectorAll('[name][data-type]')) {
    if (control.disabled || control.closest('[hidden]')) continue;
    const type = control.dataset.type;
    if (control.type === 'radio') {
      if (control.checked) values[control.name] = control.value;
      continue;
    }
    if (type === 'bool') values[control.name] = control.checked;
    else if (type === 'number') {
      if (control.value.trim() !== '') values[control.name] = Number(control.value);
    } else if (type === 'lines') values[control.name] = control.value.split('\n').map((l) => l.trim()).filter(Boolean);
    else values[control.name] = control.value;
  }
  return values;
}

/** Clears the error lines of a form. */
export function clearErrors(container) {
  for (const line of container.querySelectorAll('.field-error, .form-error')) line.textContent = '';
  for (const control of container.querySelectorAll('[aria-invalid]')) control.removeAttribute('aria-invalid');
}

/**
 * Shows an API error next to the control it names (`field`), or on the form's own error
 * line, and moves focus there. Returns true when a control took it.
 */
export function showError(container, err) {
  clearErrors(container);
  const row = err.field ? container.querySelector(`[data-field="${CSS.escape(err.field)}"]`) : null;
  const text = errorText(err);
  if (row) {
    row.querySelector('.field-error').textContent = text;
    const control = row.querySelector('input:not([type=range]):not([type=color]), select, textarea') ?? row.querySelector('input');
    control?.setAttribute('aria-invalid', 'true');
    control?.focus();
    return true;
  }
  const line = container.querySelector('.form-error');
  if (line) line.textContent = err.field ? `${err.field}: ${text}` : text;
  else announce(text, 'error');
  return false;
}

/** An API error in words. */
export function errorText(err) {
  if (!err) return '';
  if (err.code === 'network') return 'The gateway could not be reached.';
  return err.message && err.message !== err.code ? `${capitalize(err.message)} (${err.code})` : String(err.code ?? err.message);
}

const capitalize = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/** A form's own error line (errors that name no control). */
export const formError = () => h('p', { class: 'form-error', role: 'alert' });

/**
 * A modal dialog (`<dialog>`: focus stays inside, Escape closes it). `content` is a
 * node or list; `actions` buttons. Resolves when it closes, with its `returnValue`.
 */
export function openDialog({ title, content, actions = [], wide = false }) {
  const titleId = nextId('dialog');
  const dialog = h(
    'dialog',
    { class: wide ? 'wide' : '', 'aria-labelledby': titleId },
    h('h2', { id: titleId, text: title }),
    h('div', { class: 'dialog-body' }, content),
    actions.length ? h('div', { class: 'actions' }, ...actions) : null,
  );
  document.body.append(dialog);
  const closed = new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(dialog.returnValue);
    });
  });
  dialog.showModal();
  return { dialog, closed, close: (value = '') => dialog.close(value) };
}

/** Asks before something that cannot be undone; resolves to true when confirmed. */
export async function confirmAction({ title, message, confirm = 'Delete' }) {
  let box;
  const yes = button(confirm, () => box.close('yes'), 'danger');
  box = openDialog({ title, content: h('p', { text: message }), actions: [button('Cancel', () => box.close('no')), yes] });
  yes.focus();
  return (await box.closed) === 'yes';
}

/** A button; `tone`: primary, danger or none. */
export function button(label, onclick, tone = '', attrs = {}) {
  return h('button', { type: 'button', class: `btn ${tone}`.trim(), onclick, ...attrs }, label);
}

/** A link inside the console (the router takes it). */
export const link = (href, text, attrs = {}) => h('a', { href, ...attrs }, text);

/** A badge: `tone` ok, warn, bad, info or none. */
export const badge = (text, tone = '') => h('span', { class: `badge ${tone}`.trim(), text });

/**
 * A button that copies `text()` to the clipboard and says so. Pages served over plain
 * http (other than localhost) have no clipboard API: the text is selected for Ctrl+C.
 */
export function copyButton(text, label = 'Copy', { describe = 'Copied to the clipboard' } = {}) {
  const copy = button(label, async () => {
    const value = text();
    try {
      await navigator.clipboard.writeText(value);
      copy.textContent = 'Copied';
      announce(describe);
    } catch {
      const box = h('input', { value, readonly: true, 'aria-label': 'Text to copy' });
      copy.after(box);
      box.select();
      announce('Press Ctrl+C (⌘C) to copy the selected text');
    }
    setTimeout(() => (copy.textContent = label), 2000);
  });
  return copy;
}

/** Says something on the console's status line (a polite live region). */
let fading = null;
export function announce(text, tone = '') {
  const line = document.getElementById('console-status');
  if (!line) return;
  line.textContent = '';
  line.className = tone;
  // A fresh text node after clearing makes screen readers announce a repeated message.
  requestAnimationFrame(() => (line.textContent = text));
  clearTimeout(fading);
  fading = setTimeout(() => (line.textContent = ''), tone === 'error' ? 10000 : 5000);
}

/** A local date and time (`seconds`: to the second). */
export function dateTime(iso, { seconds = false } = {}) {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: seconds ? 'medium' : 'short' }) : '—';
}

/** A screen's heading (focused after navigation) with an optional lead paragraph and actions. */
export function screenHeader(title, lead, ...actions) {
  return h(
    'div',
    { class: 'screen-header' },
    h('div', {}, h('h1', { tabindex: '-1', text: title }), lead ? h('p', { class: 'lead', text: lead }) : null),
    actions.length ? h('div', { class: 'actions' }, ...actions) : null,
  );
}

/** A section box with a heading. */
export function section(title, ...children) {
  const id = nextId('section');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id, text: title }), ...children);
}

/** An error that stopped a screen from loading, with what to do. */
export function failure(err) {
  return h('p', { class: 'form-error', role: 'alert', text: `Could not load this screen: ${errorText(err)}` });
}

/**
 * A table with a caption (visually hidden when `hideCaption`), column headers and rows of
 * cells (nodes or text).
 */
export function table({ caption, columns, rows, empty = 'Nothing yet.', hideCaption = false }) {
  if (!rows.length) return h('p', { class: 'empty', text: empty });
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      h('caption', { class: hideCaption ? 'sr-only' : '', text: caption }),
      h('thead', {}, h('tr', {}, ...columns.map((c) => h('th', { scope: 'col', text: c })))),
      h('tbody', {}, ...rows.map((cells) => h('tr', {}, ...cells.map((c) => h('td', {}, c ?? ''))))),
    ),
  );
}
