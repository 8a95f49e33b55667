// pathcap report: graph zoom, search and filters; the packet explorer.
// Everything from the recording is put into the page as text
// (textContent, attributes), never as markup.
(function () {
  "use strict";
  var root = document.documentElement;

  function fail(msg) {
    root.setAttribute("data-js-error", msg);
    var b = document.getElementById("js-error");
    if (b) {
      b.hidden = false;
      b.textContent = "The page's script failed: " + msg;
    }
  }
  window.addEventListener("error", function (e) { fail(e.message || String(e)); });

  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") e.textContent = attrs[k];
        else if (k === "class") e.className = attrs[k];
        else e.setAttribute(k, attrs[k]);
      });
    }
    (kids || []).forEach(function (k) {
      if (k === null || k === undefined) return;
      e.appendChild(typeof k === "string" ? document.createTextNode(k) : k);
    });
    return e;
  }

  // fmtDur is render.FormatDuration: "850ns", "12.3µs", "4.56ms", "1.20s".
  function fmtDur(ns) {
    var a = Math.abs(ns);
    if (a < 1000) return ns + "ns";
    if (a < 999950) return (ns / 1e3).toFixed(1) + "µs";
    if (a < 999995000) return (ns / 1e6).toFixed(2) + "ms";
    return (ns / 1e9).toFixed(2) + "s";
  }
  function group(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }

  // Tables with more rows than shown.
  document.querySelectorAll(".show-more").forEach(function (b) {
    b.addEventListener("click", function () { b.closest("tbody").classList.add("expanded"); });
  });

  setupGraph();
  setupExplorer();
  root.setAttribute("data-ready", "1");

  function setupGraph() {
    var views = Array.prototype.slice.call(document.querySelectorAll(".graph-view"));
    if (!views.length) return;
    var info = document.getElementById("graph-info");
    var find = document.getElementById("graph-find");
    var minInput = document.getElementById("graph-min");
    function svgOf(v) { return v.querySelector("svg.pathcap-graph"); }
    function visible() { return views.filter(function (v) { return !v.hidden; })[0]; }
    function base(svg) { var vb = svg.viewBox.baseVal; return [vb.width, vb.height]; }
    function scaleOf(v) { return parseFloat(v.getAttribute("data-scale") || "1"); }
    function setScale(v, s, cx, cy) {
      var svg = svgOf(v), b = base(svg), old = scaleOf(v);
      s = Math.min(Math.max(s, 0.05), 4);
      if (cx === undefined) { cx = v.clientWidth / 2; cy = v.clientHeight / 2; }
      var px = (v.scrollLeft + cx) / old, py = (v.scrollTop + cy) / old;
      v.setAttribute("data-scale", String(s));
      svg.setAttribute("width", String(b[0] * s));
      svg.setAttribute("height", String(b[1] * s));
      v.scrollLeft = px * s - cx;
      v.scrollTop = py * s - cy;
    }
    function fit(v, readable) {
      var b = base(svgOf(v));
      var s = Math.min(1, (v.clientWidth - 2) / b[0]);
      // A big graph opens at a size where its labels can be read; "fit"
      // shows it whole.
      if (readable) s = Math.max(s, Math.min(1, 0.6));
      setScale(v, s);
      v.scrollLeft = 0;
      v.scrollTop = 0;
    }
    views.forEach(function (v) {
      v.setAttribute("data-scale", "1");
      if (!v.hidden) fit(v, true);
    });

    document.querySelectorAll("#graph-tools [data-zoom]").forEach(function (b) {
      b.addEventListener("click", function () {
        var v = visible();
        var z = b.getAttribute("data-zoom");
        if (z === "in") setScale(v, scaleOf(v) * 1.25);
        else if (z === "out") setScale(v, scaleOf(v) / 1.25);
        else if (z === "one") setScale(v, 1);
        else fit(v);
      });
    });
    document.querySelectorAll("#graph-tools [data-graph]").forEach(function (b) {
      b.addEventListener("click", function () {
        var id = b.getAttribute("data-graph");
        views.forEach(function (v) { v.hidden = v.getAttribute("data-graph") !== id; });
        document.querySelectorAll("#graph-tools [data-graph]").forEach(function (o) { o.classList.toggle("on", o === b); });
        var v = visible();
        if (!v.hasAttribute("data-fitted")) { fit(v, true); v.setAttribute("data-fitted", "1"); }
        clearSelection();
        applyFilters();
      });
    });
    views.forEach(function (v) {
      if (!v.hidden) v.setAttribute("data-fitted", "1");
      v.addEventListener("wheel", function (e) {
        if (!e.ctrlKey) return;
        e.preventDefault();
        var r = v.getBoundingClientRect();
        setScale(v, scaleOf(v) * (e.deltaY < 0 ? 1.15 : 1 / 1.15), e.clientX - r.left, e.clientY - r.top);
      }, { passive: false });
      var drag = null;
      v.addEventListener("mousedown", function (e) {
        if (e.button !== 0) return;
        drag = { x: e.clientX, y: e.clientY, l: v.scrollLeft, t: v.scrollTop, moved: false };
      });
      window.addEventListener("mousemove", function (e) {
        if (!drag) return;
        var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 4) { drag.moved = true; v.classList.add("panning"); }
        v.scrollLeft = drag.l - dx;
        v.scrollTop = drag.t - dy;
      });
      window.addEventListener("mouseup", function () {
        if (drag && drag.moved) v.setAttribute("data-dragged", "1");
        drag = null;
        v.classList.remove("panning");
      });
      v.addEventListener("click", function (e) {
        if (v.getAttribute("data-dragged")) { v.removeAttribute("data-dragged"); return; }
        var item = e.target.closest(".node, .edge");
        if (item) select(v, item); else clearSelection();
      });
    });

    function titleOf(item) { var t = item.querySelector("title"); return t ? t.textContent : ""; }
    function clearSelection() {
      views.forEach(function (v) {
        v.querySelectorAll(".sel, .dim").forEach(function (x) { x.classList.remove("sel", "dim"); });
      });
      info.hidden = true;
      info.textContent = "";
      if (find.value) applyFind();
    }
    function select(v, item) {
      clearSelection();
      var svg = svgOf(v);
      var keep = new Set([item]);
      if (item.classList.contains("node")) {
        svg.querySelectorAll(".edge").forEach(function (e) {
          if (e.getAttribute("data-from") === item.id || e.getAttribute("data-to") === item.id) {
            keep.add(e);
            keep.add(document.getElementById(e.getAttribute("data-from")));
            keep.add(document.getElementById(e.getAttribute("data-to")));
          }
        });
      } else {
        keep.add(document.getElementById(item.getAttribute("data-from")));
        keep.add(document.getElementById(item.getAttribute("data-to")));
      }
      svg.querySelectorAll(".node, .edge").forEach(function (x) { if (!keep.has(x)) x.classList.add("dim"); });
      item.classList.add("sel");
      info.textContent = titleOf(item);
      info.hidden = false;
    }

    function applyFind() {
      var q = find.value.trim().toLowerCase();
      var v = visible(), svg = svgOf(v), first = null;
      var matched = new Set();
      svg.querySelectorAll(".node").forEach(function (n) {
        var hit = q !== "" && titleOf(n).toLowerCase().indexOf(q) >= 0;
        n.classList.toggle("match", hit);
        if (hit) { matched.add(n.id); if (!first) first = n; }
      });
      svg.querySelectorAll(".node").forEach(function (n) { n.classList.toggle("dim", q !== "" && !matched.has(n.id)); });
      svg.querySelectorAll(".edge").forEach(function (e) {
        e.classList.toggle("dim", q !== "" && !matched.has(e.getAttribute("data-from")) && !matched.has(e.getAttribute("data-to")));
      });
      if (first) {
        var r = first.querySelector("rect"), s = scaleOf(v);
        v.scrollLeft = Math.max(0, r.x.baseVal.value * s - v.clientWidth / 2);
        v.scrollTop = Math.max(0, r.y.baseVal.value * s - v.clientHeight / 2);
      }
    }
    function applyFilters() {
      var min = Math.max(1, parseInt(minInput.value, 10) || 1);
      views.forEach(function (v) {
        var svg = svgOf(v), used = new Set();
        svg.querySelectorAll(".edge").forEach(function (e) {
          var off = parseInt(e.getAttribute("data-count"), 10) < min;
          e.classList.toggle("off", off);
          if (!off) { used.add(e.getAttribute("data-from")); used.add(e.getAttribute("data-to")); }
        });
        svg.querySelectorAll(".node").forEach(function (n) { n.classList.toggle("off", min > 1 && !used.has(n.id)); });
      });
      applyFind();
    }
    find.addEventListener("input", applyFind);
    minInput.addEventListener("input", applyFilters);
  }

  function setupExplorer() {
    var src = document.getElementById("pathcap-packets");
    var detail = document.getElementById("packet-detail");
    if (!src || !detail) return;
    var data = JSON.parse(src.textContent);
    var list = data.list || [];
    var stacks = data.stacks || {};
    var byId = new Map(), cloneOf = new Map();
    list.forEach(function (p) {
      if (!byId.has(p.id)) byId.set(p.id, p);
      (p.clones || []).forEach(function (c) { if (!cloneOf.has(c.id)) cloneOf.set(c.id, p); });
    });
    list.sort(function (a, b) { return a.t - b.t || a.id - b.id; });

    var f = {
      outcome: document.getElementById("f-outcome"), reason: document.getElementById("f-reason"),
      addr: document.getElementById("f-addr"), port: document.getElementById("f-port"),
      proto: document.getElementById("f-proto"), id: document.getElementById("f-id"), hook: document.getElementById("f-hook")
    };
    function options(select, values) {
      values.filter(function (v, i, a) { return v && a.indexOf(v) === i; }).sort().forEach(function (v) {
        select.appendChild(el("option", { value: v, text: v }));
      });
    }
    options(f.outcome, list.map(function (p) { return p.kind; }));
    options(f.reason, list.map(function (p) { return p.reason; }));
    options(f.proto, list.map(function (p) { return p.proto; }));

    function matches(p) {
      var v;
      if (f.outcome.value && p.kind !== f.outcome.value) return false;
      if (f.reason.value && p.reason !== f.reason.value) return false;
      if (f.proto.value && p.proto !== f.proto.value) return false;
      if ((v = f.addr.value.trim()) && (p.src || "").indexOf(v) < 0 && (p.dst || "").indexOf(v) < 0) return false;
      if ((v = f.port.value.trim()) && String(p.sport || "") !== v && String(p.dport || "") !== v) return false;
      if ((v = f.id.value.trim()) && String(p.id).indexOf(v) !== 0) return false;
      if ((v = f.hook.value.trim().toLowerCase()) && !p.hops.some(function (h) { return h[1].toLowerCase().indexOf(v) >= 0; })) return false;
      return true;
    }
    var tbody = document.querySelector("#explorer-list tbody");
    var count = document.getElementById("explorer-count");
    var rows = new Map();
    var limit = 500;
    function render() {
      var hits = list.filter(matches);
      tbody.textContent = "";
      rows.clear();
      hits.slice(0, limit).forEach(function (p) {
        var tr = el("tr", { "data-id": String(p.id) }, [
          el("td", { class: "num", text: String(p.id) }),
          el("td", { class: "num", text: "+" + fmtDur(p.t) }),
          el("td", { class: "num", text: fmtDur(p.dur) }),
          el("td", {}, [el("span", { class: "dot k-" + p.kind }), p.kind + (p.reason ? ": " + p.reason : "")]),
          el("td", { class: "flow", text: p.flow || "" })
        ]);
        tr.addEventListener("click", function () { show(p); history.replaceState(null, "", "#packet-" + p.id); });
        tbody.appendChild(tr);
        rows.set(p.id, tr);
      });
      count.textContent = group(hits.length) + (hits.length === 1 ? " packet matches" : " packets match") +
        (hits.length > limit ? " (the first " + limit + " listed)" : "") + ", of " + group(list.length) + " in the explorer" +
        (data.packets > list.length ? " (" + group(data.packets) + " in the recording)" : "") + ".";
    }
    Object.keys(f).forEach(function (k) { f[k].addEventListener("input", render); });
    render();

    function hopTable(p) {
      var t = el("table", { class: "hops" });
      t.appendChild(el("thead", {}, [el("tr", {}, ["+time", "", "hook", "where", "len", "notes"].map(function (h, i) {
        return el("th", { class: i === 0 || i === 4 ? "num" : "", text: h });
      }))]));
      var tb = el("tbody");
      var total = Math.max(p.dur, 1);
      p.hops.forEach(function (h) {
        // [dt, hook, dev, netns, netns name, len, changed, reason,
        // location, stack, stack lost, comm, cpu, flow, derived]
        var notes = el("td");
        if (h[6]) h[6].split(",").forEach(function (c) { notes.appendChild(el("span", { class: "badge", text: c })); });
        if (h[7]) notes.appendChild(el("span", { class: "badge drop", text: "drop " + h[7] }));
        if (h[8]) notes.appendChild(document.createTextNode(" at " + h[8]));
        if (h[13]) notes.appendChild(el("div", { class: "mono", text: h[13] }));
        if (h[11]) notes.appendChild(el("div", { class: "derived", text: h[11] + " · cpu " + h[12] }));
        var where = el("td", { class: "where" }, [h[2] || "(no device)", el("small", { text: "netns " + (h[4] ? h[4] + " (" + h[3] + ")" : String(h[3])) })]);
        var tl = el("span", { class: "tl" }, [el("i", { style: "left: calc(" + (100 * h[0] / total).toFixed(2) + "% - 2px)" })]);
        tb.appendChild(el("tr", {}, [
          el("td", { class: "num", text: "+" + fmtDur(h[0]) }), el("td", { class: "t" }, [tl]),
          el("td", { class: "hook", text: h[1] }), where, el("td", { class: "num", text: String(h[5]) }), notes
        ]));
        var extra = [];
        if (h[14] && h[14].length) extra.push(el("div", { class: "derived", text: "derived: " + h[14].join(" › ") }));
        if (h[9] && stacks[h[9]]) {
          var frames = el("ol", { class: "frames" }, stacks[h[9]].map(function (fr) { return el("li", { text: fr }); }));
          extra.push(el("details", {}, [el("summary", { text: "kernel stack, " + stacks[h[9]].length + " frames" }), frames]));
        } else if (h[10]) {
          extra.push(el("div", { class: "derived", text: "kernel stack lost" }));
        }
        if (extra.length) tb.appendChild(el("tr", { class: "sub" }, [el("td"), el("td"), el("td", { colspan: "4" }, extra)]));
      });
      t.appendChild(tb);
      return t;
    }
    function packetLink(id) {
      var a = el("a", { href: "#packet-" + id, text: String(id) });
      return a;
    }
    function describe(p, box, isClone) {
      box.appendChild(el(isClone ? "h5" : "h4", { text: (isClone ? "Clone " : "Packet ") + p.id + (p.slow ? "  (one of the slowest)" : "") }));
      box.appendChild(el("div", { class: "outcome k-text-" + p.kind, text: p.text }));
      var meta = el("div", { class: "meta" }, [
        (p.flow ? p.flow + " · " : "") + p.hops.length + (p.hops.length === 1 ? " hop" : " hops") + " · " + fmtDur(p.dur) + " · starts +" + fmtDur(p.t)
      ]);
      if (p.parent) { meta.appendChild(document.createTextNode(" · clone of ")); meta.appendChild(packetLink(p.parent)); }
      if (p.children && p.children.length) {
        meta.appendChild(document.createTextNode(" · clones: "));
        p.children.forEach(function (c, i) { if (i) meta.appendChild(document.createTextNode(", ")); meta.appendChild(packetLink(c)); });
      }
      box.appendChild(meta);
      box.appendChild(hopTable(p));
      if (p.more) box.appendChild(el("p", { class: "note", text: p.more + " more hops were not kept." }));
    }
    function show(p, cloneId) {
      detail.textContent = "";
      describe(p, detail, false);
      (p.clones || []).forEach(function (c) {
        var box = el("div", { class: "clones", id: "clone-" + c.id });
        describe(c, box, true);
        detail.appendChild(box);
      });
      if (p.more_clones) detail.appendChild(el("p", { class: "note", text: p.more_clones + " more clones were not kept." }));
      rows.forEach(function (tr, id) { tr.classList.toggle("sel", id === p.id); });
      var tr = rows.get(p.id);
      if (tr) tr.scrollIntoView({ block: "nearest" });
      if (cloneId) { var c = document.getElementById("clone-" + cloneId); if (c) c.scrollIntoView({ block: "nearest" }); }
    }
    function fromHash() {
      var m = /^#packet-(\d+)$/.exec(location.hash);
      if (!m) return;
      var id = Number(m[1]);
      var p = byId.get(id);
      if (p) show(p);
      else if (cloneOf.has(id)) show(cloneOf.get(id), id);
      else {
        detail.textContent = "";
        detail.appendChild(el("p", { class: "empty", text: "Packet " + m[1] + " is not among the explorer's packets." }));
      }
      document.getElementById("packets").scrollIntoView();
    }
    window.addEventListener("hashchange", fromHash);
    fromHash();
  }
})();
