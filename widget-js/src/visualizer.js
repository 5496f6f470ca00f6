// The in-call audio visualizer: a canvas drawn from two Web Audio `AnalyserNode`s, the
// agent's audio and the caller's microphone. Two styles: `wave` (both signals as
// waveforms) and `orb` (a glowing orb that swells with the agent's voice, a ring that
// answers the caller's). It also measures levels (RMS, 0–1) for the test hook.

export class AudioMeter {
  /** @param {AnalyserNode} analyser */
  constructor(analyser) {
    this.analyser = analyser;
    this.samples = new Float32Array(analyser.fftSize);
    this.level = 0;
    this.peak = 0;
  }

  /** Reads the current waveform; returns its RMS level. */
  read() {
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const s of this.samples) sum += s * s;
    this.level = Math.sqrt(sum / this.samples.length);
    if (this.level > this.peak) this.peak = this.level;
    return this.level;
  }
}

/** An `AnalyserNode` fed by `stream` (nothing is sent to the speakers from here). */
export function meterFor(context, stream) {
  const source = context.createMediaStreamSource(stream);
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  analyser.smoothingTimeConstant = 0.6;
  source.connect(analyser);
  return new AudioMeter(analyser);
}

export class Visualizer {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {'wave'|'orb'} style
   * @param {{agent: string, user: string}} colors
   */
  constructor(canvas, style, colors) {
    this.canvas = canvas;
    this.style = style === 'wave' ? 'wave' : 'orb';
    this.colors = colors;
    this.meters = { agent: null, user: null };
    this.smooth = { agent: 0, user: 0 };
    this.frame = 0;
    this.running = false;
    this.reducedMotion = globalThis.matchMedia?.('(prefers-reduced-motion: reduce)').matches ?? false;
  }

  setMeter(who, meter) {
    this.meters[who] = meter;
  }

  start() {
    if (this.running) return;
    this.running = true;
    const loop = (time) => {
      if (!this.running) return;
      this.draw(time);
      this.raf = requestAnimationFrame(loop);
    };
    this.raf = requestAnimationFrame(loop);
  }

  stop() {
    this.running = false;
    if (this.raf) cancelAnimationFrame(this.raf);
  }

  draw(time = 0) {
    const { canvas } = this;
    const ratio = globalThis.devicePixelRatio || 1;
    const width = canvas.clientWidth || 300;
    const height = canvas.clientHeight || 150;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    for (const who of ['agent', 'user']) {
      const level = this.meters[who]?.read() ?? 0;
      // Quick attack, slow release: calm motion that still follows speech.
      const target = Math.min(1, level * 4);
      this.smooth[who] += (target - this.smooth[who]) * (target > this.smooth[who] ? 0.5 : 0.12);
    }
    if (this.style === 'wave') this.drawWave(ctx, width, height, time);
    else this.drawOrb(ctx, width, height, time);
  }

  drawWave(ctx, width, height, time) {
    const mid = height / 2;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    // A faint baseline that breathes, so an idle call does not look frozen.
    ctx.strokeStyle = withAlpha(this.colors.agent, 0.18);
    ctx.lineWidth = 2;
    ctx.beginPath();
    for (let x = 0; x <= width; x += 4) {
      const y = mid + Math.sin(x / 18 + (this.reducedMotion ? 0 : time / 500)) * 2;
      x === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y);
    }
    ctx.stroke();
    for (const [who, lineWidth] of [
      ['user', 2],
      ['agent', 3],
    ]) {
      const meter = this.meters[who];
      if (!meter) continue;
      const samples = meter.samples;
      const gain = (height * 0.42) / Math.max(0.08, meter.level * 3);
      ctx.strokeStyle = this.colors[who];
      ctx.lineWidth = lineWidth;
      ctx.beginPath();
      const step = samples.length / width;
      for (let x = 0; x <= width; x += 2) {
        const s = samples[Math.min(samples.length - 1, Math.floor(x * step))] || 0;
        const envelope = Math.sin((Math.PI * x) / width); // tapered ends
        const y = mid + s * gain * envelope * Math.min(1, this.smooth[who] * 1.5);
        x === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y);
      }
      ctx.stroke();
    }
  }

  drawOrb(ctx, width, height, time) {
    const cx = width / 2;
    const cy = height / 2;
    const base = Math.min(width, height) * 0.24;
    const wobble = this.reducedMotion ? 0 : Math.sin(time / 700) * 0.03;
    const agent = this.smooth.agent;
    const user = this.smooth.user;
    const radius = base * (1 + wobble + agent * 0.45);

    // Glow
    const glow = ctx.createRadialGradient(cx, cy, radius * 0.6, cx, cy, radius * 1.9);
    glow.addColorStop(0, withAlpha(this.colors.agent, 0.25 + agent * 0.35));
    glow.addColorStop(1, withAlpha(this.colors.agent, 0));
    ctx.fillStyle = glow;
    ctx.beginPath();
    ctx.arc(cx, cy, radius * 1.9, 0, Math.PI * 2);
    ctx.fill();

    // The caller's ring
    if (user > 0.02) {
      ctx.strokeStyle = withAlpha(this.colors.user, 0.35 + user * 0.5);
      ctx.lineWidth = 2 + user * 4;
      ctx.beginPath();
      ctx.arc(cx, cy, radius * (1.25 + user * 0.35), 0, Math.PI * 2);
      ctx.stroke();
    }

    // The orb, lit from the top left
    const body = ctx.createRadialGradient(cx - radius * 0.35, cy - radius * 0.4, radius * 0.1, cx, cy, radius);
    body.addColorStop(0, withAlpha('#ffffff', 0.9));
    body.addColorStop(0.35, this.colors.agent);
    body.addColorStop(1, shade(this.colors.agent, -0.35));
    ctx.fillStyle = body;
    ctx.beginPath();
    ctx.arc(cx, cy, radius, 0, Math.PI * 2);
    ctx.fill();
  }
}

/** `#rrggbb` with an alpha, as `rgba()`. */
export function withAlpha(hex, alpha) {
  const [r, g, b] = rgb(hex);
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

/** `#rrggbb` lightened (amount > 0) or darkened (< 0). */
export function shade(hex, amount) {
  const mix = (c) => Math.round(amount < 0 ? c * (1 + amount) : c + (255 - c) * amount);
  const [r, g, b] = rgb(hex).map(mix);
  return `rgb(${r}, ${g}, ${b})`;
}

export function rgb(hex) {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex || '');
  const n = m ? parseInt(m[1], 16) : 0x10b981;
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}
