"use strict";
// The TRADEOS operator dashboard: first paint from bounded reads of this server, then live over the operator
// API's WebSocket. Every value reaches the page through textContent or an SVG attribute, never as markup.
(() => {
  const config = JSON.parse(document.getElementById("tradeos-config").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_ROWS = 50;
  const MAX_LIVE_POINTS = 1500;
  const EQUITY_REDRAW_MS = 1000;
  const OVERVIEW_REFRESH_MS = 1000;
  const HEALTH_POLL_MS = 5000;
  const SIGNAL_IC_REFRESH_MS = 10000; // the server recomputes the rolling IC at most this often
  const BAR_SECONDS = 60;

  const state = {
    portfolio: null,
    overview: null,
    fills: [],
    signals: [],
    riskEvents: [],
    regimeChanges: [],
    equity: [],
    status: null,
  };
  const dirty = new Set();
  let frameRequested = false;
  let lastEquityDraw = 0;
  let overviewTimer = null;
  let profileTouched = false;
  let equityTimer = null;

  const $ = (id) => document.getElementById(id);
  const money = (v) => (v == null ? "–" : Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
  const pct = (v, digits = 2) => (v == null || !Number.isFinite(v) ? "–" : `${(v * 100).toFixed(digits)}%`);
  const time = (iso) => (iso ? iso.replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, "") : "–");
  const clock = (iso) => (iso ? time(iso).slice(11) : "–");

  // ---- HTTP to this server (same origin: the session cookie, the CSRF header for commands, the operator's name)
  function operatorName() {
    const name = $("operator").value.trim();
    return name ? `dashboard:${name}` : "dashboard";
  }

  async function api(path, body) {
    const headers = { Accept: "application/json" };
    const init = { headers, credentials: "same-origin" };
    if (body !== undefined) {
      init.method = "POST";
      headers["Content-Type"] = "application/json";
      headers["X-Actor"] = operatorName();
      if (config.csrf) headers[config.csrfHeader] = config.csrf;
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      window.location.assign("/"); // the session ended: back to the sign-in form
      throw new Error("signed out");
    }
    const payload = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof payload.detail === "string" ? payload.detail : JSON.stringify(payload.detail ?? payload);
      const error = new Error(`HTTP ${response.status}: ${detail}`);
      error.status = response.status;
      throw error;
    }
    return payload;
  }

  // ---- rendering helpers
  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }
  function signed(value) {
    return value > 0 ? "num pos" : value < 0 ? "num neg" : "num";
  }
  function fillBody(id, rows, build, keyOf) {
    const tbody = $(id).tBodies[0];
    const previous = new Set([...tbody.rows].map((r) => r.dataset.key));
    const fragment = document.createDocumentFragment();
    for (const row of rows) {
      const tr = document.createElement("tr");
      for (const td of build(row)) tr.appendChild(td);
      if (keyOf) {
        tr.dataset.key = keyOf(row);
        if (previous.size && !previous.has(tr.dataset.key)) tr.className = "fresh";
      }
      fragment.appendChild(tr);
    }
    tbody.replaceChildren(fragment);
  }
  function svgNode(name, attributes) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    return node;
  }
  function markDirty(...panels) {
    for (const panel of panels) dirty.add(panel);
    if (!frameRequested) {
      frameRequested = true;
      requestAnimationFrame(render);
    }
  }

  // ---- the book
  function profileLimits() {
    const profile = state.portfolio?.profile ?? state.status?.profile;
    return state.overview && profile ? state.overview.profiles[profile] : null;
  }

  function renderHeader() {
    const p = state.portfolio;
    const tradingState = p?.trading_state ?? state.status?.status ?? "unknown";
    $("trading-state").dataset.state = tradingState;
    $("trading-state").textContent = tradingState.replace("_", "-");
    const profile = p?.profile ?? state.status?.profile;
    $("profile").textContent = profile ?? "–";
    if (profile && !profileTouched) $("profile-select").value = profile;
    $("regime").textContent = p?.regime ?? "–";
    $("clock").textContent = time(p?.timestamp);
  }

  function renderPositions() {
    const p = state.portfolio;
    const entries = new Map((state.overview?.entries ?? []).map((e) => [e.symbol, e]));
    const now = p?.timestamp ? Date.parse(p.timestamp) : null;
    fillBody(
      "positions",
      (p?.positions ?? []).filter((x) => x.quantity !== 0),
      (x) => {
        const entry = entries.get(x.symbol);
        if (!entry) scheduleOverview(); // opened since the last read: its entry is on record by now
        let holdLeft = "–";
        if (entry && entry.horizon_bars != null && now != null) {
          const left = Math.ceil(entry.horizon_bars - (now - Date.parse(entry.entered_at)) / 1000 / BAR_SECONDS);
          holdLeft = left > 0 ? `${left} bars` : "may exit";
        }
        return [
          cell(x.symbol),
          cell(String(x.quantity), "num"),
          cell(money(x.avg_price), "num"),
          cell(money(x.market_price), "num"),
          cell(money(x.unrealized_pnl), signed(x.unrealized_pnl)),
          cell(entry?.signal_type ?? "–"),
          cell(entry ? time(entry.entered_at) : "–"),
          cell(holdLeft, "num"),
        ];
      },
      (x) => x.symbol,
    );
  }

  function renderLimits() {
    const p = state.portfolio;
    const limits = profileLimits();
    if (!p || !limits) return;
    const value = p.total_value;
    const exposures = p.positions.map((x) => Math.abs(x.market_value));
    const gross = exposures.reduce((a, b) => a + b, 0) / value;
    const largest = (exposures.length ? Math.max(...exposures) : 0) / value;
    const base = state.overview?.start_of_day_value;
    const dayLoss = base ? Math.max(0, 1 - value / base) : null;
    const rows = [
      ["gross exposure", gross, limits.max_gross_exposure],
      ["largest position", largest, limits.max_position_fraction],
      ["daily loss", dayLoss, limits.daily_loss_limit],
      ["drawdown", p.drawdown, limits.drawdown_limit],
    ];
    fillBody("limits", rows, ([name, used, limit]) => {
      const meter = document.createElement("meter");
      meter.min = 0;
      meter.max = 1;
      meter.low = 0.6;
      meter.high = 0.9;
      meter.optimum = 0;
      meter.value = used == null ? 0 : Math.min(1, used / limit);
      const td = cell("");
      td.appendChild(meter);
      return [cell(name), cell(pct(used), "num"), cell(pct(limit, 0), "num"), td];
    });
    const dd = p.drawdown;
    $("drawdown-figures").textContent = `${pct(dd)} now; limit ${pct(limits.drawdown_limit, 0)} (no new exposure), ${pct(2 * limits.drawdown_limit, 0)} halts`;
  }

  function onPortfolio(p, timestamp) {
    state.portfolio = p;
    const at = timestamp ?? p.timestamp;
    if (at) {
      const last = state.equity[state.equity.length - 1];
      const point = { t: Date.parse(at), v: p.total_value, hwm: p.high_water_mark ?? p.total_value };
      if (!last || point.t > last.t) state.equity.push(point);
      else if (point.t === last.t) state.equity[state.equity.length - 1] = point;
      if (state.equity.length > MAX_LIVE_POINTS + 600) thinEquity();
    }
    markDirty("header", "positions", "limits", "equity");
  }

  function thinEquity() {
    // Keep the bucketed history and halve the live tail: the curve's shape survives, memory stays bounded.
    const history = state.overviewPoints ?? 0;
    const head = state.equity.slice(0, history);
    const tail = state.equity.slice(history).filter((_, i, all) => i % 2 === 0 || i === all.length - 1);
    state.equity = head.concat(tail);
  }

  // ---- charts (our own SVG: a path per series, dashed lines for limits)
  function scale(domain, range) {
    const [d0, d1] = domain;
    const [r0, r1] = range;
    const span = d1 - d0 || 1;
    return (v) => r0 + ((v - d0) / span) * (r1 - r0);
  }

  function path(points, x, y) {
    let d = "";
    for (let i = 0; i < points.length; i++) d += `${i ? "L" : "M"}${x(points[i][0]).toFixed(1)},${y(points[i][1]).toFixed(1)}`;
    return d;
  }

  function renderEquity() {
    const now = performance.now();
    if (now - lastEquityDraw < EQUITY_REDRAW_MS) {
      if (equityTimer === null) {
        equityTimer = setTimeout(() => {
          equityTimer = null;
          markDirty("equity");
        }, EQUITY_REDRAW_MS - (now - lastEquityDraw));
      }
      return;
    }
    lastEquityDraw = now;
    const points = state.equity;
    const chart = $("equity-chart");
    const ddChart = $("drawdown-chart");
    if (points.length < 2) {
      chart.replaceChildren(svgNode("text", { x: 10, y: 20 }));
      chart.firstChild.textContent = "no equity recorded yet";
      ddChart.replaceChildren();
      renderRegimes();
      return;
    }
    const t0 = points[0].t;
    const t1 = points[points.length - 1].t;
    let lo = Infinity;
    let hi = -Infinity;
    for (const p of points) {
      lo = Math.min(lo, p.v);
      hi = Math.max(hi, p.v, p.hwm);
    }
    const pad = (hi - lo) * 0.05 || 1;
    const x = scale([t0, t1], [0, 900]);
    const y = scale([lo - pad, hi + pad], [215, 5]);
    const top = svgNode("text", { x: 4, y: 14 });
    top.textContent = money(hi);
    const bottom = svgNode("text", { x: 4, y: 212 });
    bottom.textContent = money(lo);
    chart.replaceChildren(
      svgNode("path", { class: "hwm", d: path(points.map((p) => [p.t, p.hwm]), x, y) }),
      svgNode("path", { class: "series", d: path(points.map((p) => [p.t, p.v]), x, y) }),
      top,
      bottom,
    );
    const last = points[points.length - 1];
    $("equity-figures").textContent = `${money(last.v)} · high-water mark ${money(last.hwm)} · ${time(new Date(t0).toISOString())} → ${time(new Date(t1).toISOString())}`;

    const limits = profileLimits();
    const drawdowns = points.map((p) => [p.t, p.hwm > 0 ? Math.max(0, 1 - p.v / p.hwm) : 0]);
    const worst = Math.max(...drawdowns.map((d) => d[1]), limits ? 2 * limits.drawdown_limit : 0.01);
    const yd = scale([0, worst * 1.05], [2, 108]);
    const area = `${path(drawdowns, x, yd)}L900,2L0,2Z`;
    const nodes = [svgNode("path", { class: "dd", d: area })];
    if (limits) {
      nodes.push(svgNode("line", { class: "limit", x1: 0, x2: 900, y1: yd(limits.drawdown_limit), y2: yd(limits.drawdown_limit) }));
      nodes.push(svgNode("line", { class: "halt", x1: 0, x2: 900, y1: yd(2 * limits.drawdown_limit), y2: yd(2 * limits.drawdown_limit) }));
    }
    ddChart.replaceChildren(...nodes);
    renderRegimes();
  }

  function renderRegimes() {
    const strip = $("regime-timeline");
    const points = state.equity;
    const changes = [...state.regimeChanges].sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
    if (!changes.length && state.portfolio?.regime && points.length) {
      changes.push({ timestamp: new Date(points[0].t).toISOString(), previous: state.portfolio.regime, current: state.portfolio.regime });
    }
    if (!points.length || !changes.length) {
      strip.replaceChildren();
      return;
    }
    const t0 = points[0].t;
    const t1 = Math.max(points[points.length - 1].t, Date.parse(changes[changes.length - 1].timestamp));
    const x = scale([t0, t1], [0, 900]);
    const nodes = [];
    let current = changes[0].previous ?? "unknown";
    let from = t0;
    for (const change of changes) {
      const at = Math.max(t0, Date.parse(change.timestamp));
      if (at > from) nodes.push(svgNode("rect", { class: `regime-${current}`, x: x(from), y: 0, width: Math.max(0.5, x(at) - x(from)), height: 24 }));
      current = change.current;
      from = at;
    }
    nodes.push(svgNode("rect", { class: `regime-${current}`, x: x(from), y: 0, width: Math.max(0.5, 900 - x(from)), height: 24 }));
    strip.replaceChildren(...nodes);
  }

  function renderLegend() {
    const legend = $("regime-legend");
    const names = ["trending", "mean_reverting", "high_volatility_breakout", "low_volatility_compression", "crisis"];
    legend.replaceChildren(
      ...names.map((name) => {
        const span = document.createElement("span");
        const swatch = document.createElement("i");
        swatch.className = `regime-${name}`;
        span.append(swatch, name.replaceAll("_", " "));
        return span;
      }),
    );
  }

  // ---- logs
  function renderFills() {
    fillBody(
      "fills",
      state.fills,
      (f) => [
        cell(clock(f.timestamp)),
        cell(f.symbol),
        cell(f.side, f.side === "buy" ? "pos" : "neg"),
        cell(String(f.quantity), "num"),
        cell(money(f.price), "num"),
        cell(f.signal_type),
        cell(money(f.realized_pnl), signed(f.realized_pnl)),
      ],
      (f) => f.id,
    );
  }

  function renderSignals() {
    fillBody(
      "signals",
      state.signals,
      (s) => [cell(clock(s.timestamp)), cell(s.symbol), cell(s.signal_type), cell(s.strength.toFixed(3), signed(s.strength)), cell(s.regime)],
      (s) => String(s.id),
    );
  }

  function renderRecord() {
    const o = state.overview;
    if (!o) return;
    fillBody("rejections", o.rejections, (r) => [cell(time(r.timestamp)), cell(r.symbol), cell(r.side), cell(String(r.quantity), "num"), cell(r.reason)], (r) => r.id);
    fillBody("risk-events", state.riskEvents, (e) => [cell(time(e.timestamp)), cell(e.code, e.halts_trading ? "neg" : ""), cell(e.detail)], (e) => `${e.timestamp}|${e.code}|${e.symbol}`);
    fillBody("breakers", o.breakers, (b) => [cell(b.code), cell(String(b.trips), "num"), cell(time(b.last_trip))]);
    if (!o.breakers.length) fillBody("breakers", [["none tripped", "", ""]], (r) => r.map((v) => cell(v)));
    fillBody("control-actions", o.control_actions, (a) => [cell(time(a.timestamp)), cell(a.value ? `${a.action} ${a.value}` : a.action), cell(a.actor), cell(a.reason)]);
  }

  function renderServices() {
    const services = state.overview?.health.services ?? {};
    const ages = state.overview?.heartbeat_ages ?? {};
    const names = Object.keys(services).length ? Object.keys(services) : Object.keys(ages);
    fillBody("services", names, (name) => [
      cell(name),
      cell(services[name] ?? "–", services[name] === "healthy" ? "pos" : "neg"),
      cell(ages[name] == null ? "–" : `${ages[name].toFixed(1)} s`, "num"),
    ]);
    fillBody("queues", state.overview?.queues ?? [], (q) => {
      const name = cell(q.name);
      name.title = q.note;
      const full = q.depth != null && q.limit != null && q.depth >= q.limit / 2;
      return [
        name,
        cell(q.depth == null ? "–" : String(q.depth), full ? "num neg" : "num"),
        cell(q.limit == null ? "–" : String(q.limit), "num"),
      ];
    });
  }

  function render() {
    frameRequested = false;
    const panels = [...dirty];
    dirty.clear();
    for (const panel of panels) {
      if (panel === "header") renderHeader();
      else if (panel === "positions") renderPositions();
      else if (panel === "limits") renderLimits();
      else if (panel === "equity") renderEquity();
      else if (panel === "fills") renderFills();
      else if (panel === "signals") renderSignals();
      else if (panel === "record") renderRecord();
      else if (panel === "services") renderServices();
    }
  }

  // ---- reads
  // The profile switch offers every profile the overview knows: the built-ins and the stored custom ones.
  function listProfiles(names) {
    const select = $("profile-select");
    const shown = Array.from(select.options, (option) => option.value);
    if (shown.join("\n") === names.join("\n")) return;
    const chosen = select.value;
    select.replaceChildren(...names.map((name) => {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      return option;
    }));
    if (names.includes(chosen)) select.value = chosen;
  }

  function applyOverview(o) {
    state.overview = o;
    listProfiles(Object.keys(o.profiles));
    state.riskEvents = o.risk_events;
    state.regimeChanges = o.regime_changes;
    markDirty("record", "positions", "limits", "services", "equity");
  }

  async function refreshOverview() {
    overviewTimer = null;
    try {
      applyOverview(await api("/dashboard/overview"));
    } catch (error) {
      console.warn("overview", error.message);
    }
  }

  function scheduleOverview() {
    if (overviewTimer === null) overviewTimer = setTimeout(refreshOverview, OVERVIEW_REFRESH_MS);
  }

  async function pollHealth() {
    try {
      applyOverview(await api("/dashboard/overview"));
    } catch (error) {
      console.warn("overview", error.message);
    }
  }

  async function loadSignalIc() {
    const quietly = (path) => api(path).catch((error) => {
      console.warn(path, error.message);
      return null;
    });
    const [rolling, flow] = await Promise.all([quietly("/dashboard/rolling-ic"), quietly("/dashboard/signal-ic")]);
    const live = new Map((rolling?.signals ?? []).map((s) => [s.signal_type, s]));
    const ran = new Map((flow?.signals ?? []).map((s) => [s.signal_type, s]));
    const types = [...new Set([...live.keys(), ...ran.keys()])].sort();
    const fixed = (value, digits) => (value == null ? "–" : value.toFixed(digits));
    fillBody("signal-ic", types, (type) => {
      const r = live.get(type);
      const f = ran.get(type);
      return [
        cell(type),
        cell(fixed(r?.ic_mean, 4), signed(r?.ic_mean ?? 0)),
        cell(fixed(r?.ic_ir, 3), "num"),
        cell(r ? String(r.n_periods) : "–", "num"),
        cell(fixed(f?.ic_mean, 4), signed(f?.ic_mean ?? 0)),
        cell(f ? pct(f.win_rate, 1) : "–", "num"),
      ];
    });
    const notes = [];
    if (rolling?.first) notes.push(`IC, IR, n: rolling over the last ${rolling.window_bars} bar times (${time(rolling.first)} to ${time(rolling.last)})`);
    else if (rolling) notes.push("rolling: no bars recorded yet");
    notes.push(flow ? `flow IC, win: the signal-ic flow as of ${time(flow.as_of)}` : "flow IC, win: after the first signal-ic run");
    $("signal-ic-note").textContent = notes.join("; ");
  }

  async function loadLinks() {
    const links = await api("/dashboard/links");
    const prefect = $("prefect");
    if (links.prefect_ui) {
      const a = document.createElement("a");
      a.href = links.prefect_ui;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      a.textContent = "Prefect UI (flow runs)";
      prefect.replaceChildren(a);
    } else {
      prefect.textContent = "Prefect UI: the flows are not served by this TRADEOS home.";
    }
    const completed = Object.entries(links.flows_last_completed);
    fillBody("flow-runs", completed.length ? completed : [["no completed run found", null]], ([name, ended]) => [
      cell(name),
      cell(ended ? time(ended) : ""),
    ]);
    $("reports").replaceChildren(
      ...(links.reports.length
        ? links.reports.map((href) => {
            const li = document.createElement("li");
            const a = document.createElement("a");
            a.href = href;
            a.target = "_blank";
            a.textContent = `report ${href.slice(9, 19)}`;
            li.appendChild(a);
            return li;
          })
        : [Object.assign(document.createElement("li"), { textContent: "no report yet (daily-report flow)" })]),
    );
  }

  async function loadSnapshot() {
    const [portfolio, status, fills, signals, overview] = await Promise.all([
      api("/portfolio"),
      api("/trading/status"),
      api(`/trades?limit=${MAX_ROWS}`),
      api(`/signals?limit=${MAX_ROWS}&actionable=true`),
      api("/dashboard/overview"),
    ]);
    state.status = status;
    state.fills = fills;
    state.signals = signals;
    state.equity = overview.equity_curve.map((p) => ({ t: Date.parse(p.timestamp), v: p.total_value, hwm: p.high_water_mark }));
    state.overviewPoints = state.equity.length;
    applyOverview(overview);
    onPortfolio(portfolio, portfolio.timestamp);
    lastEquityDraw = 0;
    markDirty("header", "fills", "signals");
  }

  // ---- live
  let socket = null;
  let backoff = 500;
  function connect() {
    if (!config.wsUrl) {
      $("link").textContent = "no live link (unrecognised host name)";
      return;
    }
    socket = new WebSocket(config.wsUrl);
    socket.onopen = () => {
      backoff = 500;
      $("link").dataset.up = "true";
      $("link").textContent = "live";
    };
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      const data = event.data;
      if (event.type === "portfolio_update") onPortfolio(data, event.timestamp);
      else if (event.type === "fill") {
        state.fills.unshift(data);
        state.fills.length = Math.min(state.fills.length, MAX_ROWS);
        markDirty("fills");
        scheduleOverview();
      } else if (event.type === "signal") {
        if (!data.actionable) return;
        state.signals.unshift(data);
        state.signals.length = Math.min(state.signals.length, MAX_ROWS);
        markDirty("signals");
      } else if (event.type === "risk_event") {
        state.riskEvents.unshift(data);
        state.riskEvents.length = Math.min(state.riskEvents.length, MAX_ROWS);
        markDirty("record");
        scheduleOverview();
      } else if (event.type === "regime_change") {
        state.regimeChanges.unshift(data);
        markDirty("equity");
      }
    };
    socket.onclose = () => {
      $("link").dataset.up = "false";
      $("link").textContent = "reconnecting";
      setTimeout(async () => {
        await loadSnapshot().catch((error) => console.warn("snapshot", error.message));
        connect();
      }, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
  }

  // ---- controls
  function report(text, isError) {
    const out = $("control-result");
    out.textContent = text;
    out.dataset.error = String(Boolean(isError));
  }

  async function command(path, body, done) {
    try {
      const answer = await api(path, body);
      report(done(answer), false);
      if (answer.status) {
        state.status = answer;
        if (state.portfolio) state.portfolio = { ...state.portfolio, trading_state: answer.status, profile: answer.profile ?? state.portfolio.profile };
        markDirty("header", "limits");
      }
      await refreshOverview();
    } catch (error) {
      report(error.message, true);
    }
  }

  function wireControls() {
    const reason = () => $("reason").value.trim();
    for (const button of document.querySelectorAll("[data-command]")) {
      const name = button.dataset.command;
      button.addEventListener("click", () =>
        command(`/trading/${name}`, { reason: reason() }, (s) => `${name}: trading is ${s.status}${s.engine_acknowledged === false ? " (engine not running: stored)" : ""}`),
      );
    }
    const dialog = $("flatten-dialog");
    $("flatten").addEventListener("click", () => dialog.showModal());
    $("flatten-cancel").addEventListener("click", () => dialog.close());
    $("flatten-confirm").addEventListener("click", () => {
      dialog.close();
      command("/trading/flatten", { confirm: true, reason: reason() }, () => "flatten: every position closing at market");
    });
    $("profile-select").addEventListener("change", () => {
      profileTouched = true;
    });
    $("profile-apply").addEventListener("click", () => {
      profileTouched = false;
      const profile = $("profile-select").value;
      command("/profile", { profile, reason: reason() }, (r) => `profile: ${r.profile}`);
    });
    const operator = $("operator");
    operator.value = localStorage.getItem("tradeos.operator") ?? "";
    operator.addEventListener("change", () => localStorage.setItem("tradeos.operator", operator.value.trim()));
    if (config.signedIn) $("sign-out").hidden = false;
  }

  async function start() {
    wireControls();
    renderLegend();
    connect(); // subscribe first: nothing published while the snapshot loads is missed
    try {
      await loadSnapshot();
      // Runs after the render queued by the snapshot, in the same frame: what bench/dashboard.py times.
      requestAnimationFrame(() => performance.mark("tradeos:first-paint"));
    } catch (error) {
      report(error.message, true);
    }
    loadSignalIc();
    setInterval(loadSignalIc, SIGNAL_IC_REFRESH_MS);
    loadLinks().catch((error) => console.warn("links", error.message));
    pollHealth();
    setInterval(pollHealth, HEALTH_POLL_MS);
  }

  start();
})();
