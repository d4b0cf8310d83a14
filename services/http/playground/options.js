// The job form's options, as the server describes them (GET /v1/families: TrainingService's
// ListFamilies): every family, the data it trains on, and each option of TrainingOptions and of
// the family's options message with its type and the trainer's default and help. Every option is
// optional: a field left empty takes the trainer's default.
//
// An option here is [name, type, default, help]; type is "int" (sent as a JSON string: int64),
// "float", "bool", "text", or the list of the values it takes.

/** One TrainingOption of the answer as [name, type, default, help]. */
function formOption(option) {
  const choices = option.choices || [];
  let type = option.type === "string" ? "text" : option.type;
  if (choices.length && option.type !== "bool") type = choices;
  return [option.name, type, option.defaultValue || "", option.help || ""];
}

/**
 * ListFamilies' answer as the form's tables: {common: [option...], families: {name: {label,
 * summary, data, field, options}}}, in the server's order.
 */
export function formTables(listed) {
  const families = {};
  for (const family of listed.families || []) {
    families[family.name] = {
      label: family.name,
      summary: family.summary || "",
      data: family.data || "images",
      field: family.optionsField || family.name.replace(/-/g, "_"),
      options: (family.options || []).map(formOption),
    };
  }
  return { common: (listed.common || []).map(formOption), families };
}

/** The proto3 JSON name of a field (lowerCamelCase). */
export function jsonName(name) {
  return name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

/**
 * A value typed into the form as the JSON the message wants, or undefined when left empty
 * (the trainer's default). Throws an Error naming the option when the value cannot be it.
 */
export function optionValue(name, type, raw) {
  const text = String(raw ?? "").trim();
  if (text === "") return undefined;
  if (type === "int") {
    if (!/^-?\d+$/.test(text)) throw new Error(`${name} must be a whole number (got "${text}")`);
    return text; // int64: a JSON string
  }
  if (type === "float") {
    const value = Number(text);
    if (!Number.isFinite(value)) throw new Error(`${name} must be a number (got "${text}")`);
    return value;
  }
  if (type === "bool") return text === "true";
  return text;
}
