// The embed script: <script src="https://GATEWAY/widget/v1/call.js" data-chatbot-id="…" async></script>
// A classic script (no static imports): it finds its own tag, then loads the widget's
// ES modules from beside it. It defines no globals.
(function () {
  'use strict';
  var selector = 'script[data-chatbot-id][src*="/widget/v1/call.js"]';
  // `document.currentScript` is null for async scripts: look the tags up instead.
  var tags = document.currentScript && document.currentScript.matches(selector)
    ? [document.currentScript]
    : Array.prototype.slice.call(document.querySelectorAll(selector));
  tags.forEach(function (script) {
    if (script.hasAttribute('data-voice-widget-loaded')) return;
    script.setAttribute('data-voice-widget-loaded', '');
    var base = new URL('./', script.src).href;
    import(base + 'widget.js')
      .then(function (module) {
        return module.mountFromScript(script, base);
      })
      .catch(function (err) {
        console.warn('[voice widget] could not load:', err);
      });
  });
})();
