// Enterprise Connections: everything one environment needs, in one resource group.
//
//   az deployment group create -g <rg> -f bicep/main.bicep -p bicep/parameters/<env>.json
//
// The README's "Deploying" section is the guide; tests/infra checks this template offline against the
// code's settings and queues (shared/config.py) and runs checkov on it.

targetScope = 'resourceGroup'

// --- names and place -------------------------------------------------------------------------------

@description('Short name of the environment, used in every resource name (for example ec-prod).')
@minLength(3)
@maxLength(16)
param baseName string

@description('Region of every regional resource (the Azure Bot is global).')
param location string = resourceGroup().location

@description('Tags on every resource.')
param tags object = {}

// --- Function App ------------------------------------------------------------------------------------

@description('Memory of each Flex Consumption instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the Function App scales out to. The PgBouncer arithmetic depends on it (README).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Zone-redundant Flex Consumption plan (where the region supports it).')
param zoneRedundant bool = false

@description('Instances kept always ready for HTTP triggers (0: none; 1 avoids cold starts on sign-in and SCIM).')
@minValue(0)
@maxValue(20)
param alwaysReadyHttpInstances int = 0

@description('Connections per pool per instance (the DB_POOL_MAX_SIZE app setting; each instance has two pools).')
@minValue(1)
@maxValue(20)
param dbPoolMaxSize int = 4

@description('Custom domain for the public URLs (SSO callback, SCIM, bot). Empty: the default host name. Its DNS (CNAME and asuid TXT) must exist first: README.')
param customDomain string = ''

// --- PostgreSQL --------------------------------------------------------------------------------------

@description('Flexible Server compute size (General Purpose or Memory Optimized: the built-in PgBouncer does not run on Burstable). modules/postgres.bicep gives each its connection limit.')
@allowed([
  'Standard_D2ds_v5'
  'Standard_D4ds_v5'
  'Standard_D8ds_v5'
  'Standard_E2ds_v5'
  'Standard_E4ds_v5'
])
param postgresSkuName string = 'Standard_D2ds_v5'

@description('Storage of the flexible server, in GiB (it grows automatically).')
@minValue(32)
param postgresStorageGB int = 32

@description('Days of point-in-time restore.')
@minValue(7)
@maxValue(35)
param postgresBackupRetentionDays int = 7

@description('Geo-redundant backups (cannot be changed after the server is created).')
param postgresGeoRedundantBackup bool = false

@description('High availability: Disabled, SameZone or ZoneRedundant (not available on Burstable sizes).')
@allowed([
  'Disabled'
  'SameZone'
  'ZoneRedundant'
])
param postgresHighAvailability string = 'Disabled'

@description('Host name of a server restored from a backup, to point the app at it instead of the one this template manages (README: "Rolling back"). Empty: the managed server.')
param postgresHostOverride string = ''

@description('Object id of the ops Entra group that administers the server (the app is never an administrator).')
param opsGroupObjectId string

@description('Display name of that group: the Postgres role ops log in as.')
param opsGroupName string

// --- networking --------------------------------------------------------------------------------------

@description('public: Postgres behind its firewall (Azure services plus opsAllowedIpRanges); private: a virtual network, Postgres in a delegated subnet, storage and Key Vault behind private endpoints.')
@allowed([
  'public'
  'private'
])
param networkMode string = 'public'

@description('public mode: address ranges ({name, start, end}) allowed to reach Postgres directly, such as the ops network that runs migrations.')
param opsAllowedIpRanges array = []

@description('private mode: address space of the virtual network.')
param vnetAddressPrefix string = '10.40.0.0/22'

@description('private mode: the subnets, inside vnetAddressPrefix (a /24 each is plenty; app wants at least a /27).')
param vnetSubnetPrefixes object = {
  app: '10.40.0.0/24'
  postgres: '10.40.1.0/24'
  privateEndpoints: '10.40.2.0/24'
  ops: '10.40.3.0/24'
}

// --- Teams bot -----------------------------------------------------------------------------------------

@description('Identity type of the Azure Bot: SingleTenant (an app registration with a client secret; serves every customer tenant) or UserAssignedMSI (home-tenant users only).')
@allowed([
  'SingleTenant'
  'UserAssignedMSI'
])
param botAppType string = 'SingleTenant'

@description('SingleTenant: client id of the bot\'s app registration (created beforehand, Multiple Entra ID tenants). Ignored for UserAssignedMSI.')
param botAppId string = ''

@description('Azure Bot pricing tier.')
@allowed([
  'F0'
  'S1'
])
param botSku string = 'S1'

@description('Teams app package id (TEAMS_APP_ID); empty: the bot\'s app id.')
param teamsAppId string = ''

// --- WorkOS and the app -------------------------------------------------------------------------------

@description('WorkOS client id (client_...).')
param workosClientId string

@description('Slug of the operator\'s own tenant (OPERATOR_TENANT).')
param operatorTenant string = ''

// Secrets: leave empty to keep what Key Vault already holds (README: write them with az keyvault secret
// set, which keeps them out of shell history and deployment parameters); a value given here is written.
@secure()
@description('WorkOS API key (sk_...). Empty: keep the Key Vault secret workos-api-key as it is.')
param workosApiKey string = ''

@secure()
@description('WorkOS webhook signing secret ("NEW,OLD" during a rotation). Empty: keep the Key Vault secret.')
param workosWebhookSecret string = ''

@secure()
@description('Secret that seals SCIM cursors, the same on every instance. Empty: keep the Key Vault secret.')
param scimCursorSecret string = ''

@secure()
@description('SingleTenant bot: client secret of its app registration. Empty: keep the Key Vault secret.')
param botAppPassword string = ''

// --- monitoring ----------------------------------------------------------------------------------------

@description('Who is told when an alert fires.')
param alertEmails array = []

@description('Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

@description('Share of HTTP requests answered 5xx over 5 minutes that raises the 5xx alert, in percent.')
@minValue(1)
@maxValue(100)
param http5xxAlertPercent int = 5

// --- derived -------------------------------------------------------------------------------------------

var suffix = take(uniqueString(resourceGroup().id, baseName), 6)
var compactName = toLower(replace(baseName, '-', ''))
var names = {
  identity: 'id-${baseName}'
  storage: take('st${compactName}${suffix}', 24)
  deploymentContainer: 'app-package'
  logs: 'log-${baseName}'
  insights: 'appi-${baseName}'
  plan: 'plan-${baseName}'
  functionApp: 'func-${baseName}-${suffix}'
  postgres: 'psql-${baseName}-${suffix}'
  database: 'connections'
  keyVault: take('kv-${compactName}-${suffix}', 24)
  bot: 'bot-${baseName}-${suffix}'
  vnet: 'vnet-${baseName}'
  actionGroup: 'ag-${baseName}'
}

// The queues the code sends to and triggers on (shared/config.py defaults; host.json adds -poison).
var queueNames = [
  'dsync-apply'
  'teams-turns'
  'teams-alerts'
  'hrms-sync'
  'hrms-writeback'
]

var privateNetwork = networkMode == 'private'

// --- resources -----------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.identity
  location: location
  tags: tags
}

// The bot's Microsoft App ID: the app registration's, or the app identity's with UserAssignedMSI.
var botMicrosoftAppId = botAppType == 'UserAssignedMSI' ? identity.properties.clientId : botAppId

module network 'modules/network.bicep' = if (privateNetwork) {
  name: 'network'
  params: {
    name: names.vnet
    location: location
    tags: tags
    addressPrefix: vnetAddressPrefix
    subnetPrefixes: vnetSubnetPrefixes
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    workspaceName: names.logs
    insightsName: names.insights
    location: location
    tags: tags
    retentionDays: logRetentionDays
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.storage
    location: location
    tags: tags
    queueNames: queueNames
    deploymentContainerName: names.deploymentContainer
    privateNetwork: privateNetwork
    privateEndpointSubnetId: privateNetwork ? network.outputs.privateEndpointSubnetId : ''
    blobDnsZoneId: privateNetwork ? network.outputs.blobDnsZoneId : ''
    queueDnsZoneId: privateNetwork ? network.outputs.queueDnsZoneId : ''
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: names.keyVault
    location: location
    tags: tags
    privateNetwork: privateNetwork
    privateEndpointSubnetId: privateNetwork ? network.outputs.privateEndpointSubnetId : ''
    vaultDnsZoneId: privateNetwork ? network.outputs.vaultDnsZoneId : ''
    workosApiKey: workosApiKey
    workosWebhookSecret: workosWebhookSecret
    scimCursorSecret: scimCursorSecret
    botAppPassword: botAppPassword
  }
}

module postgres 'modules/postgres.bicep' = {
  name: 'postgres'
  params: {
    name: names.postgres
    location: location
    tags: tags
    databaseName: names.database
    skuName: postgresSkuName
    storageGB: postgresStorageGB
    backupRetentionDays: postgresBackupRetentionDays
    geoRedundantBackup: postgresGeoRedundantBackup
    highAvailability: postgresHighAvailability
    opsGroupObjectId: opsGroupObjectId
    opsGroupName: opsGroupName
    privateNetwork: privateNetwork
    delegatedSubnetId: privateNetwork ? network.outputs.postgresSubnetId : ''
    privateDnsZoneId: privateNetwork ? network.outputs.postgresDnsZoneId : ''
    opsAllowedIpRanges: opsAllowedIpRanges
    maximumInstanceCount: maximumInstanceCount
    dbPoolMaxSize: dbPoolMaxSize
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: tags
    identityId: identity.id
    identityClientId: identity.properties.clientId
    identityName: identity.name
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    zoneRedundant: zoneRedundant
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
    storageName: storage.outputs.name
    deploymentContainerName: names.deploymentContainer
    insightsConnectionString: monitoring.outputs.insightsConnectionString
    keyVaultUri: keyVault.outputs.uri
    postgresHost: empty(postgresHostOverride) ? postgres.outputs.host : postgresHostOverride
    postgresDatabase: names.database
    dbPoolMaxSize: dbPoolMaxSize
    queueNames: queueNames
    appSubnetId: privateNetwork ? network.outputs.appSubnetId : ''
    customDomain: customDomain
    workosClientId: workosClientId
    operatorTenant: operatorTenant
    botAppType: botAppType
    botAppId: botMicrosoftAppId
    teamsAppId: teamsAppId
  }
  // Its roles first: the Key Vault references and the deployment container are read with them.
  dependsOn: [
    roles
  ]
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    appPrincipalId: identity.properties.principalId
    opsGroupObjectId: opsGroupObjectId
    storageName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    insightsName: names.insights
  }
  dependsOn: [
    monitoring
  ]
}

module bot 'modules/bot.bicep' = {
  name: 'bot'
  params: {
    name: names.bot
    tags: tags
    sku: botSku
    appType: botAppType
    appId: botMicrosoftAppId
    identityId: identity.id
    endpoint: '${functionApp.outputs.publicBaseUrl}/api/messages'
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    baseName: baseName
    actionGroupName: names.actionGroup
    location: location
    tags: tags
    insightsId: monitoring.outputs.insightsId
    emails: alertEmails
    http5xxPercent: http5xxAlertPercent
  }
}

// --- what ops need next ----------------------------------------------------------------------------

@description('Function App to publish to: func azure functionapp publish <this> --python')
output functionAppName string = functionApp.outputs.name

@description('Default host name of the Function App (the custom domain\'s CNAME target).')
output defaultHostName string = functionApp.outputs.defaultHostName

@description('TXT record value for asuid.<custom domain> (domain verification).')
output customDomainVerificationId string = functionApp.outputs.customDomainVerificationId

@description('Redirect URI to register in WorkOS and in tenants\' Entra app registrations.')
output ssoCallbackUrl string = '${functionApp.outputs.publicBaseUrl}/api/auth/callback'

@description('Endpoint to register for WorkOS webhooks.')
output workosWebhookUrl string = '${functionApp.outputs.publicBaseUrl}/api/webhooks/workos'

@description('SCIM base URL: a tenant\'s IdP is given this followed by /<tenant slug>.')
output scimBaseUrl string = '${functionApp.outputs.publicBaseUrl}/api/scim/v2'

@description('Messaging endpoint of the Azure Bot.')
output botEndpoint string = '${functionApp.outputs.publicBaseUrl}/api/messages'

@description('private mode: the one address the app reaches the internet from (for customers\' allowlists); empty in public mode.')
output outboundIpAddress string = privateNetwork ? network.outputs.outboundIpAddress : ''

@description('private mode: the subnet for the ops machine that runs migrations and the CLI.')
output opsSubnetId string = privateNetwork ? network.outputs.opsSubnetId : ''

@description('Managed identity of the app: its name is the Postgres role `python -m shared.cli db app-role` creates.')
output appIdentityName string = identity.name

@description('Object id of the app identity (for pgaadauth_create_principal_with_oid).')
output appIdentityPrincipalId string = identity.properties.principalId

@description('Key Vault that holds the app\'s and the tenants\' secrets.')
output keyVaultName string = keyVault.outputs.name

@description('PostgreSQL server host name.')
output postgresHost string = postgres.outputs.host

@description('Database of the app.')
output postgresDatabase string = names.database

@description('PgBouncer: client connections the app can open at most, and the pool of server connections.')
output pgbouncer object = postgres.outputs.pgbouncer
