// Times in the viewer's own time zone (the browser's), with the zone named: "14:05 CET".
//
// Pages render every time in UTC, as <time datetime="...Z" data-local-time>1 Dec 2026, 13:05 UTC</time>,
// so the UTC text stands when scripts do not run; this script rewrites each such element in the
// viewer's zone, and each [data-time-zone] element to the zone's name. It also offers its
// formatting to the charts (static/dashboard/kit.js) as `window.AstroPlantTime`. CSV downloads and
// the API stay in UTC.
"use strict";

window.AstroPlantTime = (() => {
  const zone = new Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

  // The page is English, so English names first (EST, CET, BST); many zones have one only in
  // their own country's English or language (AEST, IST), hence the viewer's locale next; the
  // last resort is the offset a locale gives, "GMT+9", which names the zone's time too.
  const zoneNamers = [...new Set(["en-US", "en-GB", ...navigator.languages])].map(
    (locale) => new Intl.DateTimeFormat(locale, { timeZone: zone, timeZoneName: "short" }),
  );
  const OFFSET_ONLY = /^(GMT|UTC)[+\-\u2212]/;

  function zoneNameAt(date) {
    let offset = null;
    for (const namer of zoneNamers) {
      const part = namer.formatToParts(date).find((p) => p.type === "timeZoneName");
      if (!part) continue;
      if (!OFFSET_ONLY.test(part.value)) return part.value;
      offset = offset || part.value;
    }
    return offset || zone;
  }

  const clock = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  const dateAndClock = { year: "numeric", month: "short", day: "numeric", ...clock };
  const formats = {
    dateTime: new Intl.DateTimeFormat("en-GB", dateAndClock),
    dateTimeSeconds: new Intl.DateTimeFormat("en-GB", { ...dateAndClock, second: "2-digit" }),
    clock: new Intl.DateTimeFormat("en-GB", clock),
    day: new Intl.DateTimeFormat("en-GB", { year: "numeric", month: "numeric", day: "numeric" }),
  };

  // "1 Dec 2026, 14:05 CET", with seconds if asked: "1 Dec 2026, 14:05:09 CET".
  function formatDateTime(date, { seconds = false } = {}) {
    return `${(seconds ? formats.dateTimeSeconds : formats.dateTime).format(date)} ${zoneNameAt(date)}`;
  }

  // "14:05 CET" for a time of today, else as formatDateTime.
  function formatRecent(date, now = new Date()) {
    if (formats.day.format(date) === formats.day.format(now)) return `${formats.clock.format(date)} ${zoneNameAt(date)}`;
    return formatDateTime(date);
  }

  function localizePage() {
    document.querySelectorAll("time[data-local-time]").forEach((element) => {
      const date = new Date(element.getAttribute("datetime"));
      if (Number.isNaN(date.getTime())) return;
      element.textContent = formatRecent(date);
      element.title = `${formatDateTime(date, { seconds: true })} (${zone})`;
    });
    document.querySelectorAll("[data-time-zone]").forEach((element) => {
      element.textContent = zone;
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", localizePage);
  else localizePage();

  return { zone, zoneNameAt, formatDateTime, formatRecent };
})();
