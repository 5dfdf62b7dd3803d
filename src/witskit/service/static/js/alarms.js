// The alarm banner's state, without the DOM (tested with node --test): which alarms are active,
// in which order, what each line says, who may acknowledge, which tracks to mark, and when to
// sound. alarmbar.js draws it.
//
// Two inputs: the list of GET /api/v1/alarms (the truth, loaded at start and every few seconds)
// and the live WebSocket's {type: "alarm"} messages of the rig on screen (fired: added, cleared:
// removed), which arrive between two loads.

/** Most severe first. */
export const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };
/** The permission an acknowledgement needs (docs/service.md). */
export const ACK_PERMISSION = "alarms:ack";

function rank(alarm) {
  return SEVERITY_RANK[alarm.severity] ?? 3;
}

function key(alarm) {
  return `${alarm.rule}\u001f${alarm.source}`;
}

/** True when the caller's permissions (GET /auth/me) let them acknowledge alarms. */
export function canAcknowledge(me) {
  return Boolean(me && Array.isArray(me.permissions) && me.permissions.includes(ACK_PERMISSION));
}

/** The line of an alarm in the banner: "CRITICAL spp-high on rig-7: 0121 = 3200 PSI". */
export function alarmText(alarm) {
  return `${String(alarm.severity || "").toUpperCase()} ${alarm.message}`;
}

/** Who acknowledged an alarm, for its line ("" while nobody has). */
export function ackText(alarm) {
  return alarm.acknowledged_by ? `acknowledged by ${alarm.acknowledged_by}` : "";
}

export class AlarmBoard {
  constructor() {
    /** rule + source -> the firing (an alarm as the API returns it). */
    this.active = new Map();
    /** Ids of the firings already announced, so a reload does not sound them again. */
    this.seen = new Set();
  }

  /**
   * Replace the active alarms with the API's list. Returns the firings not seen before (those a
   * sound announces): every alarm of the first load counts as seen, so opening the page is quiet.
   */
  load(list, { first = false } = {}) {
    const fresh = [];
    this.active = new Map();
    for (const alarm of list || []) {
      if (!alarm || alarm.state !== "fired") continue;
      this.active.set(key(alarm), { ...alarm });
      if (!this.seen.has(alarm.event_id)) {
        this.seen.add(alarm.event_id);
        if (!first) fresh.push(alarm);
      }
    }
    return fresh;
  }

  /**
   * A live {type: "alarm"} message. Returns {changed, sound}: whether the banner changes, and
   * whether this is a firing nobody has heard yet.
   */
  apply(message) {
    if (!message || message.type !== "alarm" || !message.rule || !message.source) {
      return { changed: false, sound: false };
    }
    const k = key(message);
    if (message.state === "fired") {
      const known = this.active.get(k);
      if (known && known.event_id === message.event_id) return { changed: false, sound: false };
      this.active.set(k, { acknowledged_by: null, acknowledged_at: null, ...message });
      const sound = !this.seen.has(message.event_id);
      this.seen.add(message.event_id);
      return { changed: true, sound };
    }
    if (message.state === "cleared") {
      return { changed: this.active.delete(k), sound: false };
    }
    return { changed: false, sound: false };
  }

  /** An acknowledgement (the answer of POST /alarms/{id}/ack, or a 409's "already by ..."). */
  acknowledged(eventId, by, at) {
    for (const alarm of this.active.values()) {
      if (alarm.event_id === eventId) {
        alarm.acknowledged_by = by;
        alarm.acknowledged_at = at || null;
        return true;
      }
    }
    return false;
  }

  /** The active alarms, most severe first, then newest first. */
  list() {
    return [...this.active.values()].sort(
      (a, b) => rank(a) - rank(b) || Date.parse(b.time) - Date.parse(a.time) || key(a).localeCompare(key(b)),
    );
  }

  /** The most severe level active ("critical", "warning", "info") or null: the banner's colour. */
  level() {
    const [top] = this.list();
    return top ? top.severity : null;
  }

  /**
   * Which tracks to mark for a rig: track id -> the most severe level among the active alarms of
   * that rig on a channel the track draws. `tracks` is [{id, series: [{code}]}] (charts.js).
   * A difference rule marks its first channel's track (flow out, for flow out minus flow in).
   */
  marks(rig, tracks) {
    const out = new Map();
    for (const alarm of this.list()) {
      if (alarm.source !== rig) continue;
      for (const track of tracks) {
        if (!track.series.some((s) => s.code === alarm.code)) continue;
        const before = out.get(track.id);
        if (before === undefined || (SEVERITY_RANK[alarm.severity] ?? 3) < (SEVERITY_RANK[before] ?? 3)) {
          out.set(track.id, alarm.severity);
        }
      }
    }
    return out;
  }
}
