// A kit page's configuration section: what the kit is asked to run (desired), whether it runs it
// (pending | applied | rejected), the version history, and a "ping kit" button.
//
// Everything goes through the API the mobile app uses (session sign-in, CSRF token from the
// page): GET/PUT /kits/{id}/configuration, GET .../configuration/history, POST /kits/{id}/commands
// and GET /kits/{id}/commands/{command id}. The server checks a configuration with the same schema
// the kit does (device/configuration.py) and answers 400 with a message per field, shown beside
// the field. Configurers, owners and staff edit; everyone else who may see the kit reads.
// Tests read the section's `data-state` (loading | ready | saving | error) and the status mark's
// `data-status` (pending | applied | rejected).
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("kit-configuration-config").textContent);
  const section = document.getElementById("configuration");
  const form = document.getElementById("configuration-form");
  const statusMark = document.getElementById("config-status");
  const versionText = document.getElementById("config-version");
  const reasonText = document.getElementById("config-reason");
  const messageLine = document.getElementById("config-message");
  const historyList = document.getElementById("config-history-list");
  const pingButton = document.getElementById("ping-button");
  const pingResult = document.getElementById("ping-result");
  const { formatDateTime } = window.AstroPlantTime;

  const POLL_MS = 2000;
  const MODES = { off: "Off", on: "On", schedule: "On a schedule", thermostat: "Thermostat" };
  const STATUS_TEXT = {
    pending: "Pending: the kit has not applied it yet",
    applied: "Applied by the kit",
    rejected: "Rejected by the kit",
  };
  const TERMINAL_COMMAND = new Set(["succeeded", "failed", "expired"]);
  let pollTimer = null;

  // ---- API -------------------------------------------------------------------------------
  async function api(method, url, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["X-CSRFToken"] = form.querySelector("[name=csrfmiddlewaretoken]").value;
    }
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    return { ok: response.ok, status: response.status, data };
  }

  // ---- small DOM helpers -----------------------------------------------------------------
  function element(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === false || value == null) continue;
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    node.append(...children);
    return node;
  }
  let fieldCount = 0;
  // A labelled input whose `data-field` is the API's name for it, so a 400 lands beside it.
  function field(label, field, attributes) {
    const id = `config-field-${++fieldCount}`;
    const input = element("input", { id, "data-field": field, disabled: !config.canConfigure, ...attributes });
    const box = element("div", { class: "field config-field" }, element("label", { for: id, text: label }), input);
    box.append(element("p", { class: "field-error error", "data-error-for": field, hidden: true }));
    return { box, input };
  }
  function select(label, field, options, value) {
    const id = `config-field-${++fieldCount}`;
    const input = element("select", { id, "data-field": field, disabled: !config.canConfigure });
    for (const [optionValue, optionLabel] of Object.entries(options)) {
      input.append(element("option", { value: optionValue, text: optionLabel, selected: optionValue === value }));
    }
    const box = element("div", { class: "field config-field" }, element("label", { for: id, text: label }), input);
    box.append(element("p", { class: "field-error error", "data-error-for": field, hidden: true }));
    return { box, input };
  }
  const numberOrText = (input) => (input.value.trim() === "" ? input.value : Number(input.value));

  // ---- the form: built from `desired`, read back into `desired` --------------------------
  const readers = []; // functions that write their part into a desired object

  function render(desired) {
    const body = form.querySelector(".config-body");
    body.replaceChildren();
    readers.length = 0;

    const interval = field("Seconds between measurements", "desired.interval_seconds", {
      type: "number", min: 2, max: 3600, step: 1, value: desired.interval_seconds, required: true,
    });
    body.append(interval.box);
    readers.push((out) => { out.interval_seconds = numberOrText(interval.input); });

    const sensorsBox = element("fieldset", { class: "config-group" }, element("legend", { text: "Sensors" }));
    for (const sensor of config.sensors) {
      const current = desired.sensors[sensor.key] || { enabled: true, offset: 0, scale: 1 };
      const base = `desired.sensors.${sensor.key}`;
      const enabled = field("Enabled", `${base}.enabled`, { type: "checkbox", checked: current.enabled });
      const offset = field("Offset", `${base}.offset`, { type: "number", step: "any", value: current.offset });
      const scale = field("Scale", `${base}.scale`, { type: "number", step: "any", value: current.scale });
      sensorsBox.append(
        element("div", { class: "config-row", "data-sensor": sensor.key },
          element("h4", { text: sensor.label }), enabled.box, offset.box, scale.box),
      );
      readers.push((out) => {
        out.sensors[sensor.key] = {
          enabled: enabled.input.checked, offset: numberOrText(offset.input), scale: numberOrText(scale.input),
        };
      });
    }
    body.append(sensorsBox);

    if (config.actuators.length) {
      const actuatorsBox = element("fieldset", { class: "config-group" }, element("legend", { text: "Actuators" }));
      for (const actuator of config.actuators) actuatorsBox.append(actuatorEditor(actuator, desired.actuators[actuator.key]));
      body.append(actuatorsBox);
    }
  }

  function actuatorEditor(actuator, rule = { mode: "off" }) {
    const base = `desired.actuators.${actuator.key}`;
    const box = element("div", { class: "config-row config-actuator", "data-actuator": actuator.key });
    box.append(element("h4", { text: `${actuator.key} (${actuator.kind}${actuator.dimmable ? ", dimmable" : ", on/off"})` }));
    const mode = select("Mode", `${base}.mode`, MODES, rule.mode);
    const details = element("div", { class: "config-mode-details" });
    box.append(mode.box, details);
    box.append(element("p", { class: "field-error error", "data-error-for": base, hidden: true }));
    let readDetails = () => ({});

    const levelField = (field_, value) => field(actuator.dimmable ? "Level (%)" : "Level (0 or 100)", field_, {
      type: "number", min: 0, max: 100, step: actuator.dimmable ? "any" : 100, value: value ?? 100,
    });

    function showMode(chosen, current) {
      details.replaceChildren();
      if (chosen === "on") {
        const level = levelField(`${base}.level`, current.level);
        details.append(level.box);
        readDetails = () => ({ level: numberOrText(level.input) });
      } else if (chosen === "schedule") {
        const periods = element("ol", { class: "config-periods" });
        const rows = [];
        const addPeriod = (period) => {
          const index = rows.length;
          const at = `${base}.periods.${index}`;
          const from = field("From", `${at}.from`, { type: "time", value: period.from, required: true });
          const to = field("To", `${at}.to`, { type: "time", value: period.to, required: true });
          const level = levelField(`${at}.level`, period.level);
          const row = element("li", { class: "config-period" }, from.box, to.box, level.box);
          row.append(element("p", { class: "field-error error", "data-error-for": at, hidden: true }));
          if (config.canConfigure) {
            const remove = element("button", { type: "button", class: "button button-secondary", text: "Remove" });
            remove.addEventListener("click", () => {
              const kept = rows.filter((r) => r.row !== row).map((r) => r.read());
              showMode("schedule", { periods: kept });
            });
            row.append(remove);
          }
          const read = () => ({ from: from.input.value, to: to.input.value, level: numberOrText(level.input) });
          rows.push({ row, read });
          periods.append(row);
        };
        (current.periods && current.periods.length ? current.periods : [{ from: "06:00", to: "22:00", level: 100 }])
          .forEach(addPeriod);
        details.append(element("p", { class: "help", text: `Times are the kit's (${config.timeZone}); outside every period it is off.` }), periods);
        details.append(element("p", { class: "field-error error", "data-error-for": `${base}.periods`, hidden: true }));
        if (config.canConfigure) {
          const add = element("button", { type: "button", class: "button button-secondary", text: "Add a period" });
          add.addEventListener("click", () => addPeriod({ from: "", to: "", level: 100 }));
          details.append(add);
        }
        readDetails = () => ({ periods: rows.map((r) => r.read()) });
      } else if (chosen === "thermostat") {
        const sensors = Object.fromEntries(config.sensors.map((s) => [s.key, s.label]));
        const heating = "on_below" in current;
        const sensor = select("Sensor", `${base}.sensor`, sensors, current.sensor || (config.sensors.find((s) => s.key === "temperature") || config.sensors[0])?.key);
        const direction = select("Works by", `${base}.direction`, { cool: "Cooling: on above, off below", heat: "Heating: on below, off above" }, heating ? "heat" : "cool");
        const on = field("Switch on at", heating ? `${base}.on_below` : `${base}.on_above`, {
          type: "number", step: "any", value: heating ? current.on_below : current.on_above, required: true,
        });
        const off = field("Switch off at", heating ? `${base}.off_above` : `${base}.off_below`, {
          type: "number", step: "any", value: heating ? current.off_above : current.off_below, required: true,
        });
        const level = actuator.dimmable ? levelField(`${base}.level`, current.level) : null;
        direction.input.addEventListener("change", () => {
          const heat = direction.input.value === "heat";
          on.input.dataset.field = heat ? `${base}.on_below` : `${base}.on_above`;
          off.input.dataset.field = heat ? `${base}.off_above` : `${base}.off_below`;
        });
        details.append(sensor.box, direction.box, on.box, off.box, ...(level ? [level.box] : []));
        readDetails = () => {
          const heat = direction.input.value === "heat";
          const rule = { sensor: sensor.input.value };
          rule[heat ? "on_below" : "on_above"] = numberOrText(on.input);
          rule[heat ? "off_above" : "off_below"] = numberOrText(off.input);
          if (level) rule.level = numberOrText(level.input);
          return rule;
        };
      } else {
        readDetails = () => ({});
      }
    }
    showMode(rule.mode, rule);
    mode.input.addEventListener("change", () => showMode(mode.input.value, {}));
    readers.push((out) => { out.actuators[actuator.key] = { mode: mode.input.value, ...readDetails() }; });
    return box;
  }

  function desiredFromForm() {
    const desired = { sensors: {}, actuators: {} };
    for (const read of readers) read(desired);
    return desired;
  }

  // ---- status, errors, history -------------------------------------------------------------
  function showState(state) {
    statusMark.dataset.status = state.status;
    // Version 0 is the defaults the kit runs until someone configures it: nothing to wait for.
    statusMark.textContent = state.version ? STATUS_TEXT[state.status] || state.status : "Defaults";
    const who = state.changed_by ? ` by ${state.changed_by}` : "";
    const when = state.changed_at ? `, ${formatDateTime(new Date(state.changed_at))}` : "";
    versionText.textContent = state.version ? `Version ${state.version}${who}${when}` : "Never configured: the kit runs its defaults";
    reasonText.hidden = state.status !== "rejected" || !state.reason;
    reasonText.textContent = state.reason ? `The kit said: ${state.reason}` : "";
    clearTimeout(pollTimer);
    if (state.status === "pending" && state.version) pollTimer = setTimeout(refreshStatus, POLL_MS);
  }

  function showErrors(errors) {
    for (const box of form.querySelectorAll("[data-error-for]")) { box.hidden = true; box.textContent = ""; }
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    const unplaced = [];
    for (const [name, messages] of Object.entries(errors || {})) {
      const box = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
      const input = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
      if (box) { box.textContent = messages.join(" "); box.hidden = false; } else unplaced.push(`${name}: ${messages.join(" ")}`);
    }
    return unplaced;
  }

  async function refreshStatus() {
    const { ok, data } = await api("GET", config.configurationUrl);
    if (ok) showState(data);
    else pollTimer = setTimeout(refreshStatus, POLL_MS * 2);
  }

  async function loadHistory() {
    const { ok, data } = await api("GET", config.historyUrl);
    historyList.replaceChildren();
    if (!ok) { historyList.append(element("li", { class: "error", text: "The history cannot be read right now." })); return; }
    const versions = data.results || [];
    if (!versions.length) historyList.append(element("li", { class: "muted", text: "No changes yet." }));
    for (const entry of versions) {
      const when = formatDateTime(new Date(entry.changed_at));
      historyList.append(element("li", { "data-version": entry.version },
        element("strong", { text: `Version ${entry.version}` }),
        ` — ${entry.changed_by || "someone since removed"}, ${when}; every ${entry.desired.interval_seconds} s`));
    }
  }

  // ---- saving ------------------------------------------------------------------------------
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    section.dataset.state = "saving";
    messageLine.textContent = "Saving…";
    const { ok, status, data } = await api("PUT", config.configurationUrl, { desired: desiredFromForm() });
    if (ok) {
      showErrors({});
      messageLine.textContent = `Saved as version ${data.version}. It reaches the kit in a moment; the mark above says when the kit has applied it.`;
      showState(data);
      render(data.desired);
      loadHistory();
      section.dataset.state = "ready";
      return;
    }
    const unplaced = status === 400 ? showErrors(data.errors) : [];
    const detail = data && data.detail ? data.detail : `The server answered ${status}.`;
    messageLine.textContent = [detail, ...unplaced].join(" ");
    section.dataset.state = "error";
  });

  // ---- ping --------------------------------------------------------------------------------
  if (pingButton) {
    pingButton.addEventListener("click", async () => {
      pingButton.disabled = true;
      pingResult.dataset.status = "queued";
      pingResult.textContent = "Asking the kit…";
      const started = performance.now();
      let { ok, data } = await api("POST", config.commandsUrl, { name: "ping", arguments: {} });
      while (ok && !TERMINAL_COMMAND.has(data.status)) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        ({ ok, data } = await api("GET", `${config.commandsUrl}/${data.id}`));
      }
      pingButton.disabled = false;
      if (!ok) { pingResult.dataset.status = "error"; pingResult.textContent = (data && data.detail) || "The ping could not be sent."; return; }
      pingResult.dataset.status = data.status;
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      if (data.status === "succeeded") {
        const hours = (data.result.uptime_seconds / 3600).toFixed(1);
        pingResult.textContent = `The kit answered in ${seconds} s: up ${hours} h, software ${data.result.software_version}.`;
      } else if (data.status === "expired") {
        pingResult.textContent = "No answer: the kit seems offline (the ping expired unanswered).";
      } else {
        pingResult.textContent = `The kit could not do it: ${data.reason || "no reason given"}.`;
      }
    });
  }

  // ---- start -------------------------------------------------------------------------------
  (async () => {
    const { ok, data } = await api("GET", config.configurationUrl);
    if (!ok) {
      section.dataset.state = "error";
      messageLine.textContent = "The configuration cannot be read right now. Try again in a minute.";
      return;
    }
    render(data.desired);
    showState(data);
    section.dataset.state = "ready";
    loadHistory();
  })();
})();
