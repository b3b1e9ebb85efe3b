// swarmship rollout dashboard: polls ../api/v1/rollout and renders it.
// Everything is built with DOM calls and textContent (agent reports are
// untrusted input); charts are inline SVG. No libraries.
"use strict";

(function () {
  const API = "../api/v1/rollout";
  // An origin that requires tokens wants an operator token. It arrives in
  // the URL fragment (dashboard/#token=...), which browsers never send to
  // the server or put in a Referer; it is kept for this tab only and
  // removed from the address bar, then sent as a bearer header.
  const KEY = "swarmship-token";
  const m = /^#token=([A-Za-z0-9._-]+)$/.exec(location.hash);
  if (m) {
    try { sessionStorage.setItem(KEY, m[1]); } catch (e) { /* storage off: this page view only */ }
    history.replaceState(null, "", location.pathname + location.search);
  }
  let bearer = m ? m[1] : null;
  try { bearer = bearer || sessionStorage.getItem(KEY); } catch (e) { /* storage off */ }
  const EVERY = 2000;
  const SVG = "http://www.w3.org/2000/svg";
  const STATES = ["active", "verified", "downloading", "queued", "pending", "failed"];
  const SOURCES = [["peer", "peers"], ["origin", "origin"], ["webseed", "web seed"]];

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, kids);
    return e;
  }
  function sv(tag, attrs, ...kids) {
    const e = document.createElementNS(SVG, tag);
    setAttrs(e, attrs);
    append(e, kids);
    return e;
  }
  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = String(v);
      else if (k === "class") e.setAttribute("class", v);
      else if (k === "width%") e.style.width = v + "%";
      else e.setAttribute(k, String(v));
    }
  }
  function append(e, kids) {
    for (const k of kids.flat()) {
      if (k === null || k === undefined || k === false) continue;
      e.appendChild(typeof k === "string" || typeof k === "number" ? document.createTextNode(String(k)) : k);
    }
  }

  function bytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    n = Number(n) || 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n < 10 ? n.toFixed(1) : n.toFixed(0)) + " " + u[i];
  }
  function dur(s) {
    if (s === null || s === undefined) return "—";
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  }
  function ago(t, now) {
    const s = (now - new Date(t).getTime()) / 1000;
    return s < 1.5 ? "just now" : dur(s) + " ago";
  }
  function pct(x) { return Math.max(0, Math.min(100, x * 100)); }
  function clock(ms) {
    const d = new Date(ms);
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map(v => String(v).padStart(2, "0")).join(":");
  }
  function fmtPercent(p) { return Number.isInteger(p) ? String(p) : p.toFixed(1); }

  // Progress ring: active in green over verified in light green.
  function ring(r) {
    const R = 54, C = 2 * Math.PI * R;
    const act = r.subscribed ? r.active / r.subscribed : 0;
    const ver = r.subscribed ? r.verified / r.subscribed : 0;
    const arc = (cls, frac) => sv("circle", {
      class: cls, cx: 66, cy: 66, r: R, "stroke-width": 12, "stroke-linecap": frac > 0 && frac < 1 ? "round" : "butt",
      "stroke-dasharray": (C * frac).toFixed(2) + " " + C.toFixed(2), transform: "rotate(-90 66 66)",
    });
    return el("div", { class: "ring", role: "img", "aria-label": r.percent_active + "% active" },
      sv("svg", { width: 132, height: 132, viewBox: "0 0 132 132" },
        sv("circle", { class: "track", cx: 66, cy: 66, r: R, "stroke-width": 12 }),
        ver > 0 ? arc("verified", ver) : null,
        act > 0 ? arc("value", act) : null),
      el("div", { class: "center" },
        el("div", { class: "pct", "data-testid": "percent", text: fmtPercent(r.percent_active) + "%" }),
        el("div", { class: "lbl", text: "active" })));
  }

  function stat(k, v, cls) {
    return el("div", { class: "stat" + (cls ? " " + cls : "") }, el("div", { class: "v", text: v }), el("div", { class: "k", text: k }));
  }

  function stateBar(r) {
    const total = r.subscribed || 1;
    const bar = el("div", { class: "statebar", role: "img", "aria-label": "agents by state" });
    const legend = el("div", { class: "legend" });
    for (const s of STATES) {
      const n = r.states[s] || 0;
      if (!n) continue;
      bar.appendChild(el("span", { class: "s-" + s, "width%": (100 * n / total).toFixed(2), title: s + ": " + n }));
      legend.appendChild(el("span", { "data-state": s, "data-count": n }, el("i", { class: "s-" + s }), s + " " + n));
    }
    return [bar, legend];
  }

  function overview(r) {
    const eta = r.status === "complete" ? "done" : r.eta_seconds === null ? (r.status === "stalled" ? "stalled" : "—") : dur(r.eta_seconds);
    const sw = r.swarm;
    return el("div", { class: "overview" },
      ring(r),
      el("div", {},
        el("div", { class: "stats" },
          stat("subscribed", r.subscribed),
          stat("verified", r.verified),
          stat("active", r.active),
          stat("ETA", eta),
          stat("rate", r.status !== "complete" && r.rate_bytes_per_second > 0 ? bytes(r.rate_bytes_per_second) + "/s" : "—"),
          stat("remaining", bytes(r.remaining_bytes))),
        stateBar(r)),
      el("div", { class: "swarm", "data-seeders": sw.seeders, "data-leechers": sw.leechers },
        stat("seeders", sw.seeders),
        stat("leechers", sw.leechers),
        stat("copies in swarm", sw.availability.toFixed(sw.availability < 10 ? 2 : 0)),
        stat("origin seeders", sw.origin)));
  }

  // Bytes by source: a stacked bar of totals and a stacked area chart of
  // cumulative bytes over time, with completed bytes as a dashed line.
  function offload(r) {
    const b = r.bytes, total = b.peer + b.origin + b.webseed;
    const share = total ? b.peer / total : 0;
    const head = el("div", { class: "offload-head" },
      el("h3", { text: "Bytes by source" }),
      el("div", { class: "big" }, el("b", { "data-peer-share": Math.round(share * 100), text: Math.round(share * 100) + "%" }), " from peers · ",
        el("span", { "data-origin-copies": r.origin_copies.toFixed(2), text: r.origin_copies.toFixed(2) + " copies from origin" })));
    const stack = el("div", { class: "stack", role: "img", "aria-label": "bytes by source" });
    const legend = el("div", { class: "legend" });
    for (const [k, label] of SOURCES) {
      if (total && b[k]) stack.appendChild(el("span", { class: "b-" + k, "width%": (100 * b[k] / total).toFixed(2), title: label + ": " + bytes(b[k]) }));
      legend.appendChild(el("span", { "data-source": k, "data-bytes": b[k] }, el("i", { class: "b-" + k }), label + " " + bytes(b[k])));
    }
    if (r.reused) legend.appendChild(el("span", { "data-reused": r.reused }, "reused locally " + bytes(r.reused)));
    return el("div", {}, head, stack, legend, chart(r));
  }

  function chart(r) {
    const W = 760, H = 170, L = 56, R = 8, T = 8, B = 20;
    const pts = r.series || [];
    const svg = sv("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "bytes by source over time" });
    if (pts.length < 2) {
      svg.appendChild(sv("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "collecting samples…"));
      return svg;
    }
    const t0 = pts[0].t, t1 = pts[pts.length - 1].t;
    let ymax = 1;
    for (const p of pts) ymax = Math.max(ymax, p.peer + p.origin + p.webseed, p.completed);
    const x = t => L + (W - L - R) * (t1 === t0 ? 1 : (t - t0) / (t1 - t0));
    const y = v => T + (H - T - B) * (1 - v / ymax);
    for (let i = 0; i <= 2; i++) {
      const v = ymax * i / 2;
      svg.appendChild(sv("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      svg.appendChild(sv("text", { x: L - 6, y: y(v) + 3, "text-anchor": "end" }, bytes(v)));
    }
    svg.appendChild(sv("text", { x: L, y: H - 5 }, clock(t0)));
    svg.appendChild(sv("text", { x: W - R, y: H - 5, "text-anchor": "end" }, clock(t1)));
    // Stack from the bottom: origin, web seed, peers.
    const layers = [["origin", p => p.origin], ["webseed", p => p.webseed], ["peer", p => p.peer]];
    const base = pts.map(() => 0);
    for (const [k, f] of layers) {
      const top = pts.map((p, i) => base[i] + f(p));
      let d = "M" + pts.map((p, i) => x(p.t).toFixed(1) + "," + y(top[i]).toFixed(1)).join(" L");
      for (let i = pts.length - 1; i >= 0; i--) d += " L" + x(pts[i].t).toFixed(1) + "," + y(base[i]).toFixed(1);
      svg.appendChild(sv("path", { class: "a-" + k, d: d + " Z" }));
      for (let i = 0; i < pts.length; i++) base[i] = top[i];
    }
    svg.appendChild(sv("path", { class: "l-done", d: "M" + pts.map(p => x(p.t).toFixed(1) + "," + y(p.completed).toFixed(1)).join(" L") }));
    return svg;
  }

  function bars(title, list, kind) {
    const box = el("div", {}, el("h3", { text: title }));
    const rows = el("div", { class: "bars" });
    // Many sites: the least advanced first, and only the first few.
    const MAX = 10;
    const frac = s => s.subscribed ? s.active / s.subscribed : 1;
    const sorted = list.slice().sort((a, b) => frac(a) - frac(b) || a.name.localeCompare(b.name));
    const shown = sorted.length > MAX ? sorted.slice(0, MAX) : list;
    for (const s of shown) {
      const n = s.subscribed || 0;
      rows.appendChild(el("div", { class: "barrow", ["data-" + kind]: s.name, "data-agents": n, "data-active": s.active },
        el("div", { class: "n", title: s.name, text: s.name }),
        el("div", { class: "track", title: `${s.active} active, ${s.verified} verified of ${n}` },
          el("span", { class: "s-verified", "width%": n ? pct(s.verified / n).toFixed(1) : 0 }),
          el("span", { class: "s-active", "width%": n ? pct(s.active / n).toFixed(1) : 0 })),
        el("div", { class: "c", text: `${s.active}/${n}` }),
        el("div", { class: "wan", text: "WAN from origin " + bytes(s.bytes.origin + s.bytes.webseed) + " · peers " + bytes(s.bytes.peer) })));
    }
    if (!list.length) rows.appendChild(el("p", { class: "none", text: "none" }));
    if (shown.length < list.length) {
      const rest = sorted.slice(MAX), done = rest.filter(s => s.active === s.subscribed).length;
      rows.appendChild(el("p", { class: "more", text: `and ${rest.length} more ${kind === "site" ? "sites" : "regions"} (${done} complete)` }));
    }
    box.appendChild(rows);
    return box;
  }

  // Column names ending in # are numeric: right-aligned.
  function headRow(names) {
    return el("tr", {}, names.map(h => h.endsWith("#") ? el("th", { class: "num", text: h.slice(0, -1) }) : el("th", { text: h })));
  }

  function stalledTable(r, now) {
    const box = el("div", { "data-stalled": r.stalled_total }, el("h3", { text: "Stalled or failing agents" + (r.stalled_total ? " (" + r.stalled_total + ")" : "") }));
    if (!r.stalled.length) {
      box.appendChild(el("p", { class: "none", text: "None: every agent is progressing." }));
      return box;
    }
    const t = el("table", { class: "table" },
      headRow(["agent", "site", "state", "progress#", "why", "last error", "since#"]));
    for (const s of r.stalled) {
      t.appendChild(el("tr", { "data-agent": s.agent_id },
        el("td", { text: s.name || s.agent_id }),
        el("td", { text: s.site || "—" }),
        el("td", { text: s.state }),
        el("td", { class: "num", text: s.size ? Math.floor(100 * s.completed / s.size) + "%" : "—" }),
        el("td", { text: s.why }),
        el("td", { class: "err", text: s.last_error || "" }),
        el("td", { class: "num", text: ago(s.since, now) })));
    }
    box.appendChild(el("div", { class: "tablewrap" }, t));
    if (r.stalled_total > r.stalled.length) box.appendChild(el("p", { class: "more", text: `and ${r.stalled_total - r.stalled.length} more` }));
    return box;
  }

  // Sites that will miss the release's deliver-by time at their rate;
  // shown only when some release has a deadline at risk.
  function atRiskTable(r) {
    if (!r.at_risk || !r.at_risk.length) return null;
    const box = el("div", { "data-at-risk": r.at_risk_total }, el("h3", { text: "Will miss the deliver-by time (" + r.at_risk_total + ")" }));
    const t = el("table", { class: "table" },
      headRow(["agent", "site", "progress#", "rate", "deliver by", "eta", "why"]));
    for (const s of r.at_risk) {
      t.appendChild(el("tr", { "data-agent": s.agent_id },
        el("td", { text: s.name || s.agent_id }),
        el("td", { text: s.site || "—" }),
        el("td", { class: "num", text: s.size ? Math.floor(100 * s.completed / s.size) + "%" : "—" }),
        el("td", { text: s.rate_bytes_per_second ? bytes(s.rate_bytes_per_second) + "/s" : "—" }),
        el("td", { text: s.deliver_by }),
        el("td", { text: s.eta || "never at this rate" }),
        el("td", { class: "err", text: s.why + (s.reason ? ": " + s.reason : "") })));
    }
    box.appendChild(el("div", { class: "tablewrap" }, t));
    if (r.at_risk_total > r.at_risk.length) box.appendChild(el("p", { class: "more", text: `and ${r.at_risk_total - r.at_risk.length} more` }));
    return box;
  }

  function card(r, now) {
    return el("article", {
      class: "card", "data-release": r.release, "data-agents": r.subscribed, "data-active": r.active,
      "data-verified": r.verified, "data-progress": fmtPercent(r.percent_active), "data-status": r.status,
    },
      el("div", { class: "card-head" },
        el("h2", { text: r.release }),
        el("span", { class: "badge " + r.status, text: r.status.replace("_", " ") }),
        el("span", { class: "meta mono", title: r.infohash || "", text: (r.size ? bytes(r.size) + " · " : "") + (r.infohash ? r.infohash.slice(0, 12) + "…" : "") })),
      overview(r),
      el("div", { class: "twocol" },
        offload(r),
        el("div", {}, bars("Sites", r.sites, "site"), r.regions.length > 1 ? bars("Regions", r.regions, "region") : null)),
      stalledTable(r, now),
      atRiskTable(r));
  }

  function alerts(list, now) {
    const box = document.getElementById("alerts");
    box.replaceChildren();
    box.dataset.count = list.length;
    if (!list.length) box.appendChild(el("p", { class: "ok", text: "✓ No alerts" }));
    for (const a of list) {
      box.appendChild(el("div", { class: "alert " + a.severity, "data-alert": a.kind, role: "alert" },
        el("span", { class: "kind", text: a.kind.replace("_", " ") }),
        el("span", { text: a.message }),
        el("span", { class: "since", text: "since " + ago(a.since, now) })));
    }
  }

  function summary(d, now) {
    const box = document.getElementById("summary");
    const a = d.agents, e = d.origin_egress || {};
    box.dataset.agentsLive = a.live;
    box.dataset.agentsKnown = a.known;
    const chip = (k, v, bad) => el("span", { class: "chip" + (bad ? " bad" : "") }, el("b", { text: v }), k);
    box.replaceChildren(
      chip("agents live", a.live + "/" + a.known, a.missing > 0),
      chip("seeding", a.seeding),
      chip("releases", d.releases.filter(r => r.subscribed > 0).length),
      chip("alerts", d.alerts.length, d.alerts.length > 0),
      chip("origin egress", bytes((e.webseed || 0) + (e.peer || 0))),
      ...(e.relay ? [chip("relay egress", bytes(e.relay))] : []),
      ...Object.entries(d.agent_versions || {}).sort().map(([v, n]) => chip("on swarmship " + v, n)),
      chip("updated", clock(now)));
  }

  function policyText(p) {
    const parts = [p.mode || "on"];
    if (p.profile) parts.push(p.profile);
    const lim = v => !v || v === "unlimited" ? "∞" : v;
    if (lim(p.down_limit) !== "∞" || lim(p.up_limit) !== "∞") parts.push("↓" + lim(p.down_limit) + " ↑" + lim(p.up_limit));
    if (!p.upload_allowed) parts.push("no uploads" + (p.throttle ? " (" + p.throttle + ")" : ""));
    if (p.policy_docs && p.policy_docs.length) parts.push("fleet: " + p.policy_docs.join(","));
    if (p.policy_error) parts.push("⚠ " + p.policy_error);
    return parts.join(" · ");
  }

  // policySources says where each value came from (fleet policy), for the
  // cell's tooltip: "down: policy:stores, mode: local".
  function policySources(p) {
    if (!p.sources) return undefined;
    return Object.keys(p.sources).sort().map(k => k + ": " + p.sources[k]).join(", ");
  }

  function agentsTable(list, known, now) {
    const t = document.getElementById("agents");
    t.replaceChildren(headRow(["agent", "site", "region", "status", "last report#", "releases", "policy", "peers#", "uploaded#", "catalog"]));
    for (const a of list) {
      t.appendChild(el("tr", { "data-agent": a.agent_id, "data-live": a.live },
        el("td", { title: a.agent_id + (a.version ? " · swarmship " + a.version : ""), "data-version": a.version || "", text: (a.name || a.agent_id) + (a.version ? " (" + a.version + ")" : "") }),
        el("td", { text: a.site || "—" }),
        el("td", { text: a.region || "—" }),
        el("td", {}, el("span", { class: "dot " + (a.live ? "live" : "missing") }), a.live ? "live" : "missing"),
        el("td", { class: "num", text: ago(a.last_seen, now) }),
        el("td", { class: "mono", text: a.releases.join(", ") || "—" }),
        el("td", { "data-upload": a.policy.upload_allowed, title: policySources(a.policy), text: policyText(a.policy) }),
        el("td", { class: "num", text: a.peers }),
        el("td", { class: "num", text: bytes(a.uploaded) }),
        el("td", { class: "err", text: [a.catalog_error, a.self_update && "self-update " + a.self_update].filter(Boolean).join("; ") })));
    }
    if (!list.length) t.appendChild(el("tr", {}, el("td", { colspan: 10, class: "none", text: "No agent has reported yet." })));
    if (known > list.length) t.appendChild(el("tr", {}, el("td", { colspan: 10, class: "more", text: `showing ${list.length} of ${known} agents (missing first)` })));
  }

  // Signed rollout plans: state, why stopped, and who is in which wave
  // (the listed agents, placed as the agents place themselves).
  function plans(list) {
    const box = document.getElementById("plans");
    box.hidden = !list.length;
    box.replaceChildren(el("h2", { text: "Rollout waves" }), ...list.map(p => {
      const head = el("p", { "data-plan": p.name, "data-plan-state": p.state || "error" },
        el("b", { text: p.name + (p.version ? "@" + p.version : "") }), " ",
        el("span", { class: "badge " + (p.state === "running" || p.state === "done" ? "in_progress" : "stalled"), text: p.state || "unreadable" }),
        p.reason || p.error ? el("span", { class: "err", text: " " + (p.reason || p.error) }) : null,
        p.state ? el("span", { class: "meta", text: ` · ${p.opened} of ${p.waves.length} waves open since ${p.since} · soak ${p.soak} · max failures ${fmtPercent(p.max_failures * 100)}%` }) : null);
      if (!p.waves) return head;
      const t = el("table", { class: "table" }, headRow(["wave", "", "agents#", "active#", "failed#", "who"]));
      p.waves.forEach((w, i) => t.appendChild(el("tr", { "data-wave": i + 1, "data-failed": w.failed },
        el("td", { text: (i + 1) + ". " + w.wave }),
        el("td", { text: i < p.opened ? "open" : "waiting" }),
        el("td", { class: "num", text: w.agents.length }),
        el("td", { class: "num", text: w.active }),
        el("td", { class: "num" + (w.failed ? " err" : ""), text: w.failed }),
        el("td", { class: "mono", text: w.agents.slice(0, 20).join(" ") + (w.agents.length > 20 ? ` and ${w.agents.length - 20} more` : "") }))));
      return el("div", {}, head, el("div", { class: "tablewrap" }, t));
    }));
  }

  // Signage screens whose scheduled content was not verified at air
  // time: the previous content stays on them. Shown while any exists.
  function screens(d) {
    const box = document.getElementById("screens");
    const list = d.screens_at_risk || [];
    box.hidden = !list.length;
    box.dataset.screensAtRisk = d.screens_at_risk_total || 0;
    if (!list.length) { box.replaceChildren(); return; }
    const t = el("table", { class: "table" }, headRow(["agent", "site", "screen", "missed since", "wanted", "still playing", "why"]));
    for (const s of list) {
      t.appendChild(el("tr", { "data-screen": s.screen, "data-agent": s.agent_id },
        el("td", { text: s.name || s.agent_id }),
        el("td", { text: s.site || "—" }),
        el("td", { text: s.screen }),
        el("td", { text: s.since }),
        el("td", { text: s.wanted }),
        el("td", { text: s.playing || "nothing" }),
        el("td", { class: "err", text: s.reason || "" })));
    }
    const more = d.screens_at_risk_total > list.length ? el("p", { class: "more", text: `and ${d.screens_at_risk_total - list.length} more` }) : null;
    box.replaceChildren(el("h2", { text: `Screens at risk (${d.screens_at_risk_total} of ${d.screens})` }), el("div", { class: "tablewrap" }, t), more);
  }

  // Peer contribution (GET ../api/v1/peers): what the agents' ledgers say
  // of each peer; freeloaders and misbehaving peers first. The quarantine
  // list shows which of them are already cut off.
  function peersPanel(c, quarantined) {
    const box = document.getElementById("peers");
    const flagged = c.peers.filter(p => p.freeloader || p.misbehaving);
    box.hidden = !c.peers.length && !quarantined.length;
    const q = new Set(quarantined.map(e => e.applied ? "peer:" + e.applied : e.entry));
    const t = el("table", { class: "table" }, headRow(["peer", "agent", "address", "received#", "sent#", "bad pieces#", "stalled#", "starved s#", "flags", "quarantine"]));
    for (const p of c.peers.slice(0, 50)) {
      const inQ = q.has("peer:" + p.peer_id) || q.has("addr:" + p.addr);
      t.appendChild(el("tr", { "data-peer": p.peer_id, "data-freeloader": String(!!p.freeloader), "data-misbehaving": String(!!p.misbehaving), "data-quarantined": String(inQ) },
        el("td", { class: "mono", title: p.peer_id, text: p.peer_id.slice(0, 16) + "…" }),
        el("td", { text: p.name || p.agent_id || "—" }),
        el("td", { class: "mono", text: p.addr }),
        el("td", { class: "num", text: bytes(p.received) }),
        el("td", { class: "num", text: bytes(p.sent) }),
        el("td", { class: "num" + (p.bad_pieces ? " err" : ""), text: p.bad_pieces }),
        el("td", { class: "num" + (p.stalled ? " err" : ""), text: p.stalled }),
        el("td", { class: "num", text: p.starved }),
        el("td", { class: p.why ? "err" : "", text: p.why || "—" }),
        el("td", { text: inQ ? "quarantined" : "—" })));
    }
    const head = el("h2", { text: "Peers" + (flagged.length ? ` (${c.freeloaders} freeloading, ${c.misbehaving} misbehaving)` : "") });
    box.replaceChildren(head, el("div", { class: "tablewrap" }, t),
      el("p", { class: "meta", text: `${quarantined.length} quarantined · swarmship quarantine add peer:ID --origin URL` }));
  }

  async function pollPeers(headers) {
    try {
      const [pr, qr] = await Promise.all([fetch("../api/v1/peers", { cache: "no-store", headers }), fetch("../api/v1/quarantine", { cache: "no-store", headers })]);
      if (!pr.ok) return;
      peersPanel(await pr.json(), qr.ok ? await qr.json() : []);
    } catch (e) { /* the rollout poll shows the origin's state */ }
  }

  function render(d) {
    const now = Date.now();
    summary(d, now);
    alerts(d.alerts, now);
    const live = d.releases.filter(r => r.subscribed > 0);
    const box = document.getElementById("releases");
    box.replaceChildren(...live.map(r => card(r, now)));
    if (!live.length) box.appendChild(el("p", { class: "empty", text: "No agent reports a subscribed release yet." }));
    const cached = d.releases.filter(r => r.subscribed === 0);
    const c = document.getElementById("cached");
    c.hidden = cached.length === 0;
    c.replaceChildren("Kept for rollback: ", ...cached.map(r => el("span", { "data-cached": r.release, text: `${r.release} on ${r.cached}` })));
    plans(d.rollout_plans || []);
    screens(d);
    agentsTable(d.agent_list, d.agents.known, now);
    document.body.dataset.state = "ready";
    document.body.dataset.updated = d.generated;
  }

  async function poll() {
    const err = document.getElementById("error");
    try {
      const headers = { Accept: "application/json" };
      if (bearer) headers.Authorization = "Bearer " + bearer;
      const res = await fetch(API, { cache: "no-store", headers });
      if (res.status === 401 || res.status === 403) {
        throw new Error(res.status + ": this origin needs an operator token; open dashboard/#token=TOKEN (swarmship token issue --role operator)");
      }
      if (!res.ok) throw new Error(res.status + " " + res.statusText);
      render(await res.json());
      await pollPeers(headers);
      err.hidden = true;
    } catch (e) {
      err.textContent = "Cannot read the rollout from the origin: " + e.message + " (showing the last data)";
      err.hidden = false;
      if (document.body.dataset.state !== "ready") document.body.dataset.state = "error";
    }
    setTimeout(poll, EVERY);
  }

  poll();
})();
