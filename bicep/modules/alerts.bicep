// Each query returns the rows that count; a rule fires when there is at least one in its 5 minutes.
// Alerts, all from the app's own telemetry in Application Insights, to one action group:
// - a message moved to any -poison queue (the host logs "Moving message to queue '<name>-poison'" when a
//   message has failed maxDequeueCount times; storage metrics cannot tell one queue from another);
// - an HRMS sync run that failed (shared/hrms/engine.py logs the admins' notice, alert id hrms-failed-<run>);
// - the share of HTTP requests answered 5xx.

param baseName string
param actionGroupName string
param location string
param tags object
param insightsId string
@description('Addresses told when an alert fires.')
param emails array
param http5xxPercent int

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: take(replace(baseName, '-', ''), 12)
    enabled: true
    emailReceivers: [for (email, i) in emails: {
      name: 'ops-${i}'
      emailAddress: email
      useCommonAlertSchema: true
    }]
  }
}

var rules = [
  {
    name: 'poison-queue-messages'
    description: 'A queue message failed every attempt and was moved to its -poison queue (README: "Poison queues").'
    severity: 1
    query: 'traces | where message has "Moving message to queue" and message has "-poison"'
    threshold: 0
  }
  {
    name: 'hrms-run-failed'
    description: 'A tenant\'s HRMS sync run failed; its reason is in hrms runs <tenant> and in the message.'
    severity: 2
    query: 'traces | where severityLevel >= 3 and message has "hrms-failed-"'
    threshold: 0
  }
  {
    name: 'http-5xx-rate'
    description: 'More than the allowed share of HTTP requests were answered with a 5xx status.'
    severity: 1
    query: 'requests | summarize total = count(), failed = countif(toint(resultCode) >= 500) | where total >= 20 | extend percent = 100.0 * failed / total | where percent > ${http5xxPercent} | project percent'
    threshold: 0
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [for rule in rules: {
  name: '${baseName}-${rule.name}'
  location: location
  tags: tags
  properties: {
    displayName: '${baseName}: ${rule.name}'
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      insightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: rule.threshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]
