// Tiny fakes for testing the browser client (client/gatsby-plugin-livecount/livecount.mjs)
// under node:test without a browser or npm packages: WebSocket, DOM, timers, random
// and window.

// ---- timers ---------------------------------------------------------------

/** Virtual clock: nothing runs until advance() is called. */
export function createClock() {
  let now = 0;
  let nextId = 1;
  let seq = 0;
  const timers = new Map(); // id -> { at, seq, fn }

  function schedule(fn, ms) {
    const id = nextId++;
    timers.set(id, { at: now + Math.max(0, Number(ms) || 0), seq: seq++, fn });
    return id;
  }

  return {
    get now() {
      return now;
    },
    get pending() {
      return timers.size;
    },
    setTimeout: schedule,
    clearTimeout: (id) => timers.delete(id),
    requestAnimationFrame: (fn) => schedule(() => fn(now), 16),
    /** Delays of the timers waiting now, in scheduling order. */
    delays() {
      return [...timers.values()].sort((a, b) => a.seq - b.seq).map((t) => t.at - now);
    },
    /** Move time forward by ms, running due timers (and ones they schedule) in order. */
    advance(ms = 0) {
      const end = now + ms;
      for (;;) {
        let next = null;
        let nextKey = null;
        for (const [id, t] of timers) {
          if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) {
            next = t;
            nextKey = id;
          }
        }
        if (!next) break;
        timers.delete(nextKey);
        now = next.at;
        next.fn();
      }
      now = end;
    },
  };
}

/** Deterministic random: cycles through the given values. */
export function sequenceRandom(...values) {
  let i = 0;
  return () => values[i++ % values.length];
}

// ---- WebSocket ------------------------------------------------------------

/** A WebSocket class whose instances are recorded and driven by the test. */
export function createWebSocketClass() {
  const sockets = [];
  const control = { throwOnConstruct: false, attempts: 0 };

  class FakeWebSocket {
    constructor(url) {
      control.attempts++;
      if (control.throwOnConstruct) throw new Error("blocked by CSP");
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.onopen = null;
      this.onclose = null;
      this.onmessage = null;
      this.onerror = null;
      sockets.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error("InvalidStateError: not open");
      this.sent.push(data);
    }
    close() {
      if (this.readyState === 3) return;
      this.readyState = 3;
      if (this.onclose) this.onclose({ code: 1000 });
    }
    // ---- test controls ----
    serverOpen() {
      this.readyState = 1;
      if (this.onopen) this.onopen({});
    }
    serverClose() {
      if (this.readyState === 3) return;
      this.readyState = 3;
      if (this.onerror) this.onerror({});
      if (this.onclose) this.onclose({ code: 1006 });
    }
    receive(obj) {
      if (this.onmessage) this.onmessage({ data: typeof obj === "string" ? obj : JSON.stringify(obj) });
    }
    messages() {
      return this.sent.map((s) => JSON.parse(s));
    }
  }

  return {
    WebSocket: FakeWebSocket,
    sockets,
    control,
    get last() {
      return sockets[sockets.length - 1];
    },
  };
}

// ---- DOM ------------------------------------------------------------------

export class FakeElement {
  constructor(attrs = {}, text = "") {
    this.attrs = { ...attrs };
    this.textContent = text;
  }
  getAttribute(name) {
    return Object.prototype.hasOwnProperty.call(this.attrs, name) ? this.attrs[name] : null;
  }
  setAttribute(name, value) {
    this.attrs[name] = String(value);
  }
  removeAttribute(name) {
    delete this.attrs[name];
  }
}

/** el({"data-livecount": "x"}) */
export function el(attrs, text) {
  return new FakeElement(attrs, text);
}

/**
 * A document holding a flat list of elements. Only attribute-presence
 * selectors ("[a]" and lists "[a],[b]") are supported; anything else throws
 * so a test notices if the client starts relying on more.
 */
export function createDocument({ elements = [], title = "", referrer = "" } = {}) {
  const listeners = new Map(); // type -> Set
  let title_ = title;
  const doc = {
    elements,
    referrer,
    queries: 0,
    visibilityState: "visible",
    documentElement: new FakeElement(),
    head: { name: "head" },
    /** Fake MutationObservers watching <head>; each title change notifies them. */
    observers: new Set(),
    /** Fake MutationObservers watching the whole document (counters rendered later). */
    treeObservers: new Set(),
    /** Like a render that adds elements: notifies the tree observers of it. */
    render(...added) {
      doc.elements.push(...added);
      for (const o of [...doc.treeObservers]) o.notify([{ type: "childList", target: doc.documentElement, addedNodes: added }]);
    },
    get title() {
      return title_;
    },
    set title(value) {
      title_ = value;
      for (const o of [...doc.observers]) o.notify();
    },
    addEventListener(type, fn) {
      if (!listeners.has(type)) listeners.set(type, new Set());
      listeners.get(type).add(fn);
    },
    removeEventListener(type, fn) {
      if (listeners.has(type)) listeners.get(type).delete(fn);
    },
    listenerCount(type) {
      return listeners.has(type) ? listeners.get(type).size : 0;
    },
    /** Change visibilityState and fire visibilitychange, like a tab switch. */
    setVisibility(state) {
      doc.visibilityState = state;
      for (const fn of [...(listeners.get("visibilitychange") || [])]) fn({ type: "visibilitychange" });
    },
    querySelectorAll(selector) {
      doc.queries++;
      const names = selector.split(",").map((part) => {
        const m = /^\s*\[([\w-]+)\]\s*$/.exec(part);
        if (!m) throw new Error("fake DOM: unsupported selector " + selector);
        return m[1];
      });
      return doc.elements.filter((e) => names.some((n) => e.getAttribute(n) !== null));
    },
    querySelector(selector) {
      return doc.querySelectorAll(selector)[0] || null;
    },
  };
  return doc;
}

/** A MutationObserver class bound to one fake document: one on <head> fires when the
 * title changes, one on the document when doc.render() adds elements. */
export function createMutationObserverClass(doc) {
  return class FakeMutationObserver {
    constructor(callback) {
      this.callback = callback;
      this.target = null;
    }
    observe(target, init) {
      this.target = target;
      this.init = init;
      (target === doc.head ? doc.observers : doc.treeObservers).add(this);
    }
    disconnect() {
      doc.observers.delete(this);
      doc.treeObservers.delete(this);
    }
    notify(records = [{ type: "childList", target: this.target }]) {
      this.callback(records, this);
    }
  };
}

/** sessionStorage: strings only, like the real one; `broken` makes every call throw. */
export function createStorage({ broken = false } = {}) {
  const data = new Map();
  const check = () => {
    if (broken) throw new Error("SecurityError: storage is disabled");
  };
  return {
    data,
    getItem(key) {
      check();
      return data.has(key) ? data.get(key) : null;
    },
    setItem(key, value) {
      check();
      data.set(key, String(value));
    },
  };
}

// ---- window ---------------------------------------------------------------

export class FakeCustomEvent {
  constructor(type, init) {
    this.type = type;
    this.detail = init ? init.detail : undefined;
  }
}

export function createWindow({ protocol = "http:", host = "example.test", pathname = "/", document, clock, WebSocket } = {}) {
  const events = [];
  return {
    location: { protocol, host, pathname },
    navigator: { doNotTrack: null },
    performance: { getEntriesByType: () => [{ type: "navigate" }] },
    document,
    WebSocket,
    CustomEvent: FakeCustomEvent,
    events,
    dispatchEvent(event) {
      events.push(event);
      return true;
    },
    setTimeout: clock && clock.setTimeout,
    clearTimeout: clock && clock.clearTimeout,
    requestAnimationFrame: clock && clock.requestAnimationFrame,
  };
}
