// The Function App on Flex Consumption (Python 3.11) with the user-assigned identity, identity-based
// host storage, Key Vault references for its secrets and every setting shared/config.py reads.

param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
@description('Name of the managed identity: the Postgres role the app logs in as.')
param identityName string
param instanceMemoryMB int
param maximumInstanceCount int
param zoneRedundant bool
param alwaysReadyHttpInstances int
param storageName string
param deploymentContainerName string
@secure()
@description('Holds the instrumentation key: kept out of the deployment\'s logs.')
param insightsConnectionString string
param keyVaultUri string
param postgresHost string
param postgresDatabase string
param dbPoolMaxSize int
@description('The app\'s queues in the order dsync-apply, teams-turns, teams-alerts, hrms-sync, hrms-writeback.')
param queueNames array
@description('private mode: the subnet delegated to Microsoft.App/environments; empty: no virtual network.')
param appSubnetId string
param customDomain string
param workosClientId string
param operatorTenant string
param botAppType string
param botAppId string
param teamsAppId string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy is the zoneRedundant parameter (true in prod.json), left to the region's Flex Consumption support
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: public by design: browsers, customers' IdPs (SCIM), WorkOS and Teams call it; each endpoint authenticates its caller
  // checkov:skip=CKV_AZURE_17: none of the callers (browsers, IdPs, WorkOS, the Bot connector) presents a client certificate
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales instances on demand (maximumInstanceCount); alwaysReadyHttpInstances keeps some warm
  // checkov:skip=CKV_AZURE_213: Flex Consumption replaces unhealthy instances itself; GET /api/health is for probes and ops (README "Health"), watched with the 5xx alert
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(appSubnetId) ? null : appSubnetId
    // Private mode: Key Vault references and everything else go through the virtual network.
    vnetRouteAllEnabled: !empty(appSubnetId)
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: alwaysReadyHttpInstances > 0 ? [
          {
            name: 'http'
            instanceCount: alwaysReadyHttpInstances
          }
        ] : []
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// The URLs customers are given (SSO callback, SCIM, bot endpoint) start here: the custom domain when
// there is one, so that they never change when the app is redeployed.
var publicBaseUrl = empty(customDomain) ? 'https://${site.properties.defaultHostName}' : 'https://${customDomain}'

// Unversioned references: a new secret version is picked up when the app restarts or within a day.
var keyVaultSecret = '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/'

// Every setting shared/config.py declares (tests/infra checks it against SETTINGS). Not set here, by design:
// DATABASE_URL and DATABASE_DIRECT_URL (Azure uses the POSTGRES_* group with the identity's Entra token),
// AzureWebJobsStorage (the identity-based AzureWebJobsStorage__* form instead) and
// FUNCTIONS_WORKER_RUNTIME (Flex Consumption takes the runtime from functionAppConfig and refuses it).
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // This resource is the app settings list, which checkov takes for a site configuration:
  // checkov:skip=CKV_AZURE_13: the app authenticates every caller itself (SSO, SCIM tokens, app credentials, Bot Framework JWTs); App Service Authentication would stand in front of IdPs and Teams
  // checkov:skip=CKV_AZURE_63: HTTP logs are an App Service (Windows/IIS) feature; requests go to Application Insights
  // checkov:skip=CKV_AZURE_65: detailed error pages are an IIS feature; errors go to Application Insights
  // checkov:skip=CKV_AZURE_66: failed request tracing is an IIS feature; failures go to Application Insights
  // checkov:skip=CKV_AZURE_80: a Python app: no .NET Framework
  // checkov:skip=CKV_AZURE_88: Flex Consumption runs from its deployment container; nothing is kept on Azure Files
  // checkov:skip=CKV_AZURE_222: the app settings list, taken by checkov for the site: the site itself is covered above
  parent: site
  name: 'appsettings'
  properties: {
    // Host: storage, monitoring (Entra-authenticated telemetry).
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
    AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
    APPLICATIONINSIGHTS_CONNECTION_STRING: insightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // Database: through the server's PgBouncer (6432) as the identity's Postgres role.
    POSTGRES_HOST: postgresHost
    POSTGRES_PORT: '6432'
    POSTGRES_DIRECT_PORT: '5432'
    POSTGRES_DATABASE: postgresDatabase
    POSTGRES_USER: identityName
    POSTGRES_SSLMODE: 'require'
    DB_POOL_MAX_SIZE: string(dbPoolMaxSize)
    DB_POOL_TIMEOUT_SECONDS: '10'
    DB_STATEMENT_TIMEOUT_MS: '30000'
    // Identity, secrets, outbound.
    AZURE_CLIENT_ID: identityClientId
    KEY_VAULT_URL: keyVaultUri
    SECRET_CACHE_SECONDS: '300'
    OUTBOUND_ALLOWED_LOCAL_HOSTS: ''
    // Queues.
    DSYNC_APPLY_QUEUE: queueNames[0]
    TEAMS_TURNS_QUEUE: queueNames[1]
    TEAMS_ALERTS_QUEUE: queueNames[2]
    HRMS_SYNC_QUEUE: queueNames[3]
    HRMS_WRITEBACK_QUEUE: queueNames[4]
    // Public address, SCIM, sign-in.
    PUBLIC_BASE_URL: publicBaseUrl
    SCIM_CURSOR_SECRET: '${keyVaultSecret}scim-cursor-secret/)'
    WORKOS_API_KEY: '${keyVaultSecret}workos-api-key/)'
    WORKOS_CLIENT_ID: workosClientId
    WORKOS_BASE_URL: 'https://api.workos.com'
    WORKOS_WEBHOOK_SECRET: '${keyVaultSecret}workos-webhook-secret/)'
    ENTRA_AUTHORITY_HOST: 'https://login.microsoftonline.com'
    OPERATOR_TENANT: operatorTenant
    LOGIN_RATE_LIMIT_PER_MINUTE: '60'
    SIGN_IN_LOG_RETENTION_DAYS: '400'
    // Directory Sync and retention.
    DSYNC_POLL_SCHEDULE: '0 */1 * * * *'
    DSYNC_EVENT_RETENTION_DAYS: '30'
    RETENTION_SCHEDULE: '0 17 3 * * *'
    ADMIN_AUDIT_RETENTION_DAYS: '400'
    // Teams bot.
    MicrosoftAppType: botAppType
    MicrosoftAppId: botAppId
    MicrosoftAppPassword: botAppType == 'SingleTenant' ? '${keyVaultSecret}bot-app-password/)' : ''
    MicrosoftAppTenantId: tenant().tenantId
    BOT_OPENID_METADATA_URL: 'https://login.botframework.com/v1/.well-known/openidconfiguration'
    TEAMS_SERVICE_URL: 'https://smba.trafficmanager.net/teams/'
    TEAMS_APP_ID: teamsAppId
    TEAMS_APP_VERSION: '1.0.0'
    TEAMS_CHAT_INLINE_SECONDS: '5'
    TEAMS_CHAT_TIMEOUT_SECONDS: '60'
    TEAMS_SENDS_PER_SECOND: '40'
    TEAMS_ALERT_BATCH_SIZE: '50'
    TEAMS_RETENTION_DAYS: '90'
    // HRMS.
    HRMS_SCHEDULE_CHECK: '0 */5 * * * *'
    HRMS_FULL_SYNC_DAYS: '7'
    HRMS_RUN_RETENTION_DAYS: '400'
  }
}

// Custom domain: its CNAME (to the default host name) and asuid TXT record (customDomainVerificationId)
// must exist before this runs. The binding is made first, then the free managed certificate is issued
// for it, then the binding is switched to SNI with that certificate (modules/sni-binding.bicep).
resource hostName 'Microsoft.Web/sites/hostNameBindings@2024-04-01' = if (!empty(customDomain)) {
  parent: site
  name: empty(customDomain) ? 'unused' : customDomain
  properties: {
    siteName: site.name
    hostNameType: 'Verified'
    customHostNameDnsRecordType: 'CName'
    sslState: 'Disabled'
  }
  dependsOn: [
    appSettings
  ]
}

resource certificate 'Microsoft.Web/certificates@2024-04-01' = if (!empty(customDomain)) {
  name: empty(customDomain) ? 'unused' : customDomain
  location: location
  tags: tags
  properties: {
    serverFarmId: plan.id
    canonicalName: customDomain
  }
  dependsOn: [
    hostName
  ]
}

module sniBinding 'sni-binding.bicep' = if (!empty(customDomain)) {
  name: 'sni-binding'
  params: {
    siteName: site.name
    hostName: customDomain
    thumbprint: empty(customDomain) ? '' : certificate.properties.thumbprint
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
output customDomainVerificationId string = site.properties.customDomainVerificationId
output publicBaseUrl string = publicBaseUrl
