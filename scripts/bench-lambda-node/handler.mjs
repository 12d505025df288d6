// The tutorial's alert function in Node.js: emails through SNS when a reading is above the
// threshold. It is the comparison point of scripts/bench-lambda, not part of the product.
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";

const threshold = Number(process.env.TEMPERATURE_THRESHOLD ?? "35");
const topicArn = process.env.ALERT_TOPIC_ARN;
if (!Number.isFinite(threshold)) {
  throw new Error(`TEMPERATURE_THRESHOLD=${process.env.TEMPERATURE_THRESHOLD} is invalid: expected a number`);
}
if (!topicArn) {
  throw new Error("ALERT_TOPIC_ARN is not set");
}

// Created once per process, as the Rust function creates its clients before the first poll.
const sns = new SNSClient({});

const decimal = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function readTemperature(event) {
  const value = event?.temperature;
  if (typeof value === "number") return value;
  if (typeof value === "string" && decimal.test(value)) return Number(value);
  return undefined;
}

export async function handler(event) {
  const temperature = readTemperature(event);
  if (temperature === undefined || !Number.isFinite(temperature)) {
    return { status: "ignored", reason: "temperature is not a number or a numeric string" };
  }
  if (temperature <= threshold) {
    return { status: "unchanged", temperature, threshold };
  }
  const output = await sns.send(
    new PublishCommand({
      TopicArn: topicArn,
      Subject: "Temperature Alert",
      Message: `The temperature is ${temperature.toFixed(2)} °C, above the threshold of ${threshold.toFixed(2)} °C.`,
    }),
  );
  return { status: "raised", temperature, threshold, messageId: output.MessageId };
}
