// Validates an OpenAPI document (file path argument) with @seriousme/openapi-schema-validator.
// Exit 0 and "valid <version>" when it validates; exit 1 with the errors otherwise.
import { Validator } from "@seriousme/openapi-schema-validator";
import { readFileSync } from "node:fs";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate_openapi.mjs FILE");
  process.exit(2);
}
const validator = new Validator();
const res = await validator.validate(JSON.parse(readFileSync(file, "utf8")));
if (res.valid) {
  console.log("valid", validator.version);
} else {
  console.log(JSON.stringify(res.errors, null, 2));
  process.exit(1);
}
