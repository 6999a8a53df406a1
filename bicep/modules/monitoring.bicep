// Log Analytics and workspace-based Application Insights that accepts Entra-authenticated telemetry only
// (the app sends with its managed identity: APPLICATIONINSIGHTS_AUTHENTICATION_STRING).

param workspaceName string
param insightsName string
param location string
param tags object
param retentionDays int

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: insightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
  }
}

output insightsId string = insights.id
output insightsConnectionString string = insights.properties.ConnectionString
