#!/bin/sh
# Regenerates the sample events of this folder with the SAM CLI (see README.md).
#   SAM=/tmp/samvenv/bin/sam sh tests/events/generate.sh
# SAM CLI in a throwaway virtualenv: python3 -m venv /tmp/samvenv &&
#   /tmp/samvenv/bin/pip install aws-sam-cli
set -eu
SAM=${SAM:-sam}
export SAM_CLI_TELEMETRY=0
cd "$(dirname "$0")"
gen() {  # gen FILE SERVICE EVENT [OPTIONS...]
  out=$1; shift
  "$SAM" local generate-event "$@" > "$out.json"
}
gen s3_put s3 put --bucket amlproxy-test --key input/census-income-sample.csv
gen sns_notification sns notification --topic amlproxy-records
gen sqs_receive_message sqs receive-message --queue-name amlproxy-records
gen apigateway_aws_proxy apigateway aws-proxy --method POST --path predict --resource /predict --body '{}'
gen apigateway_http_api_proxy apigateway http-api-proxy --method POST --path predict --body '{}'
for pair in \
  alexa-skills-kit:end-session alexa-skills-kit:intent-answer \
  alexa-skills-kit:intent-getnewfact alexa-skills-kit:intent-mycoloris \
  alexa-skills-kit:intent-recipe alexa-skills-kit:start-session \
  alexa-smart-home:smart-home-control-turn-off-request \
  alexa-smart-home:smart-home-control-turn-on-request \
  alexa-smart-home:smart-home-discovery-request \
  alb:request \
  apigateway:authorizer apigateway:request-authorizer \
  appsync:resolver \
  batch:get-job batch:submit-job \
  cloudformation:create-request \
  cloudfront:ab-test cloudfront:access-request-in-response cloudfront:http-redirect \
  cloudfront:modify-querystring cloudfront:modify-response-header \
  cloudfront:multiple-remote-calls-aggregate-response \
  cloudfront:normalize-querystring-to-improve-cache-hit \
  cloudfront:redirect-on-viewer-country cloudfront:redirect-unauthenticated-users \
  cloudfront:response-generation cloudfront:serve-object-on-viewer-device \
  cloudfront:simple-remote-call \
  codecommit:repository codepipeline:job cognito:sync-trigger \
  config:item-change-notification config:oversized-item-change-notification \
  config:periodic-rule \
  connect:contact-flow-event \
  dynamodb:update \
  cloudwatch:logs cloudwatch:scheduled-event \
  kinesis:analytics kinesis:analytics-compressed kinesis:analytics-dynamodb \
  kinesis:analytics-kpl kinesis:apachelog kinesis:cloudwatch-logs-processor \
  kinesis:get-records kinesis:kinesis-firehose kinesis:streams-as-source kinesis:syslog \
  lex:book-car lex:book-hotel lex:make-appointment lex:order-flowers \
  lex-v2:banking-bot lex-v2:book-car lex-v2:book-hotel \
  rekognition:s3-request \
  s3:batch-invocation s3:delete \
  sagemaker:ground-truth-annotation-consolidation sagemaker:ground-truth-pre-human \
  ses:email-receiving \
  stepfunctions:error \
  workmail:email
do
  service=${pair%%:*}; event=${pair#*:}
  gen "$(echo "${service}_${event}" | tr - _)" "$service" "$event"
done
