import { describe, expect, it } from "vitest";
import { gtidModel, isAnyGtid } from "../../core/gtid/index.js";

const A = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
const B = "55778904-0299-11f1-b1b8-4ef0c4956feb";
const mysql = gtidModel("mysql");
const mariadb = gtidModel("mariadb");

describe("MySQL GTID sets", () => {
  it("parse and print as gtid_executed does: sorted, merged, untagged first, across lines", () => {
    expect(mysql.parseSet(`${B}:5-7:1-3:4,\n${A}:9:1-2`).toString()).toBe(`${A}:1-2:9,${B}:1-7`);
    expect(mysql.parseSet(`${B}:1-13:mytag:1-2,${B}:othertag:5`).toString()).toBe(
      `${B}:1-13:mytag:1-2:othertag:5`,
    );
    expect(mysql.parseSet(`${B.toUpperCase()}:MyTag:3`).toString()).toBe(`${B}:mytag:3`);
    expect(mysql.parseSet("").isEmpty()).toBe(true);
  });

  it("union, subtraction, contains and includes", () => {
    const executed = mysql.parseSet(`${A}:1-10,${B}:1-3:mytag:1-2`);
    expect(executed.union(mysql.parseSet(`${A}:11-12:20,${B}:mytag:3`)).toString()).toBe(
      `${A}:1-12:20,${B}:1-3:mytag:1-3`,
    );
    expect(executed.subtract(mysql.parseSet(`${A}:3-5,${B}:1-3`)).toString()).toBe(
      `${A}:1-2:6-10,${B}:mytag:1-2`,
    );
    expect(executed.contains(mysql.parseSet(`${A}:2-9,${B}:mytag:2`))).toBe(true);
    expect(executed.contains(mysql.parseSet(`${A}:2-11`))).toBe(false);
    expect(executed.includes(`${B}:mytag:2`)).toBe(true);
    expect(executed.includes(`${B}:othertag:2`)).toBe(false);
    expect(executed.includes(`${A}:11`)).toBe(false);
    expect(executed.add(`${A}:11`).toString()).toBe(`${A}:1-11,${B}:1-3:mytag:1-2`);
    expect(executed.equals(mysql.parseSet(`${B}:3:1-2:mytag:2:1,${A}:6-10:1-5`))).toBe(true);
    // After a tag, ranges belong to that tag.
    expect(executed.equals(mysql.parseSet(`${B}:mytag:1-2:1-3,${A}:1-10`))).toBe(false);
  });

  it("past and next, per uuid and tag", () => {
    const executed = mysql.parseSet(`${A}:1-10`);
    expect(executed.isPast(`${A}:9`)).toBe(true);
    expect(executed.isPast(`${A}:10`)).toBe(false);
    expect(executed.isPast(`${B}:1`)).toBe(false);
    expect(executed.isNext(`${A}:11`)).toBe(true);
    expect(executed.isNext(`${A}:12`)).toBe(false);
    expect(executed.isNext(`${B}:1`)).toBe(true);
    expect(executed.isNext(`${A}:mytag:1`)).toBe(true);
  });

  it("refuse what is not a GTID, showing the syntax", () => {
    expect(() => mysql.parseGtid("0-1-5")).toThrow(
      /"0-1-5" is not a MySQL GTID; expected uuid:N or uuid:tag:N/,
    );
    expect(() => mysql.parseGtid(`${A}:0`)).toThrow(/not a MySQL GTID/);
    expect(() => mysql.parseGtid(`${A}:1-5`)).toThrow(/not a MySQL GTID/);
    expect(() => mysql.parseSet(`${A}:5-3`)).toThrow(/"5-3" in GTID set .* is not a valid range/);
    expect(() => mysql.parseSet(`${A}:x!`)).toThrow(/neither a range nor a tag/);
    expect(() => mysql.parseSet("1-2")).toThrow(/does not start with a server uuid/);
    expect(() => mysql.parseGtid("nope")).toThrow(expect.objectContaining({ name: "GtidInvalid" }));
  });
});

describe("MariaDB GTID positions", () => {
  it("parse and print one GTID per domain, sorted", () => {
    expect(mariadb.parseSet("1-2-7, 0-1-100").toString()).toBe("0-1-100,1-2-7");
    expect(() => mariadb.parseSet("0-1-5,0-2-6")).toThrow(/names domain 0 twice/);
    expect(() => mariadb.parseGtid(`${A}:5`)).toThrow(
      /is not a MariaDB GTID; expected domain-server-sequence/,
    );
  });

  it("union keeps the newest of each domain; subtraction keeps the domains that are ahead", () => {
    const position = mariadb.parseSet("0-1-100,1-2-7");
    expect(position.union(mariadb.parseSet("0-3-90,2-1-4")).toString()).toBe("0-1-100,1-2-7,2-1-4");
    expect(position.union(mariadb.parseSet("0-3-101")).toString()).toBe("0-3-101,1-2-7");
    expect(position.subtract(mariadb.parseSet("0-1-100,1-2-5")).toString()).toBe("1-2-7");
    expect(position.includes("0-5-100")).toBe(true);
    expect(position.includes("0-1-101")).toBe(false);
    expect(position.contains(mariadb.parseSet("0-1-99,1-2-7"))).toBe(true);
    expect(position.isPast("0-1-99")).toBe(true);
    expect(position.isPast("0-1-100")).toBe(false);
    expect(position.isNext("0-1-101")).toBe(true);
    expect(position.isNext("3-1-1")).toBe(true);
    expect(position.add("0-1-101").toString()).toBe("0-1-101,1-2-7");
  });

  it("never mixes engines", () => {
    expect(() => mariadb.parseSet("0-1-1").union(mysql.parseSet(`${A}:1`))).toThrow(
      /cannot combine a mariadb GTID set \(0-1-1\) with a mysql one/,
    );
    expect(isAnyGtid("0-1-1")).toBe(true);
    expect(isAnyGtid(`${A}:mytag:3`)).toBe(true);
    expect(isAnyGtid("2026-11-21T10:15:00Z")).toBe(false);
  });
});
