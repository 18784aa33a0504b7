// Milesight EM500-CO2, TTN device-repository style (decodeUplink -> {data, warnings, errors}).
// Written for gateway-agent from the layout in FORMATS.md 6.13; channel records, little-endian.
// Suggested field_map: battery -> battery_pct, temperature -> temperature_c,
// humidity -> humidity_pct, co2 -> co2_ppm, pressure -> pressure_hpa.
function readUInt16LE(bytes, i) {
  return bytes[i] | (bytes[i + 1] << 8);
}

function readInt16LE(bytes, i) {
  var v = readUInt16LE(bytes, i);
  return v > 0x7fff ? v - 0x10000 : v;
}

var RECORDS = {
  "01-75": { size: 1, read: function (b, i, d) { d.battery = b[i]; } },
  "03-67": { size: 2, read: function (b, i, d) { d.temperature = readInt16LE(b, i) / 10; } },
  "04-68": { size: 1, read: function (b, i, d) { d.humidity = b[i] / 2; } },
  "05-7d": { size: 2, read: function (b, i, d) { d.co2 = readUInt16LE(b, i); } },
  "06-73": { size: 2, read: function (b, i, d) { d.pressure = readUInt16LE(b, i) / 10; } }
};

function hex2(n) {
  return (n < 16 ? "0" : "") + n.toString(16);
}

function decodeUplink(input) {
  var bytes = input.bytes;
  var data = {};
  var warnings = [];
  var i = 0;
  while (i < bytes.length) {
    if (i + 2 > bytes.length) {
      return { errors: ["record header cut short at offset " + i] };
    }
    var key = hex2(bytes[i]) + "-" + hex2(bytes[i + 1]);
    var rec = RECORDS[key];
    if (!rec) {
      warnings.push("unknown record " + key + " at offset " + i);
      break;
    }
    if (i + 2 + rec.size > bytes.length) {
      return { errors: ["record " + key + " cut short"] };
    }
    rec.read(bytes, i + 2, data);
    i += 2 + rec.size;
  }
  return { data: data, warnings: warnings, errors: [] };
}
